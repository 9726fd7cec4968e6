"""Counting what clients ask for, so tests and benchmarks can assert "HTTP requests per adapter"."""

from __future__ import annotations

import threading
from collections import Counter


class RequestLog:
    """Thread-safe counts of the requests a server received (faulted ones included).

    Kinds: ``list`` (repo listings), ``info`` (repo info), ``tree``, ``file-head`` and ``file-get``
    (resolve), ``cdn`` (a realistic hub's LFS downloads), the writes ``create``, ``validate-yaml``,
    ``preupload`` and ``commit``, ``unknown`` (any other path).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kinds: Counter[str] = Counter()
        self._paths: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()

    def record(self, kind: str, method: str, path: str, status: int) -> None:
        with self._lock:
            self._kinds[kind] += 1
            self._paths[f"{method} {path}"] += 1
            self._statuses[status] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._kinds.values())

    def by_kind(self) -> dict[str, int]:
        with self._lock:
            return dict(self._kinds)

    def by_path(self) -> dict[str, int]:
        """Counts keyed ``"METHOD /path"`` (the path as requested, without the query string)."""
        with self._lock:
            return dict(self._paths)

    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._statuses)

    def reset(self) -> None:
        with self._lock:
            self._kinds.clear()
            self._paths.clear()
            self._statuses.clear()
