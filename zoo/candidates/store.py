"""The candidate store: where built candidate folders and the results of shards are kept.

A plain path is a local folder (the embedded default, ``ZOO_HOME/candidates``): builds write into it and
evaluation reads from it, nothing is copied. Any other fsspec URL (``s3://bucket/zoo``, ``gs://...``,
``file:///mnt/x``) is object storage that every worker reaches: a worker builds or reads a candidate in its
own local cache folder and copies it to or from the store, so GPU workers need no shared volume. Each
shard also leaves one small JSON result per candidate (``results/<name>.json``): the orchestrator reads
them back whatever ran the shard, and a shard handed out again skips what is already there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec

RESULTS = "results"


class CandidateStore:
    """A local folder or an fsspec URL; ``working_dir`` is the local folder builds and scoring use."""

    def __init__(self, url: str | Path, cache_dir: str | Path) -> None:
        self.url = str(url).rstrip("/")
        self.remote = "://" in self.url
        self.fs, self.root = fsspec.core.url_to_fs(self.url) if self.remote else (fsspec.filesystem("file"), self.url)
        self.working_dir = Path(cache_dir) if self.remote else Path(self.url)

    def _path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def publish(self, artifact: str | None) -> None:
        """Copy a folder built under ``working_dir`` to the store (nothing to do for a local store)."""
        if not self.remote or artifact is None:
            return
        local = self.working_dir / artifact
        target = self._path(artifact)
        if self.fs.exists(target):  # content-addressed: a folder there is the same folder
            return
        parent, _, name = artifact.rpartition("/")
        staging = self._path(*([parent] if parent else []), f".{name}.partial")
        self.fs.put(str(local), staging, recursive=True)
        self.fs.mv(staging, target, recursive=True)

    def fetch(self, artifact: str | None) -> None:
        """Make the store's folder ``artifact`` present under ``working_dir`` (kept there as a cache)."""
        if not self.remote or artifact is None or (self.working_dir / artifact).is_dir():
            return
        local = self.working_dir / artifact
        partial = local.with_name(f".{local.name}.partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        self.fs.get(self._path(artifact), str(partial), recursive=True)
        partial.rename(local)

    def write_result(self, name: str, payload: dict[str, Any]) -> None:
        """One shard result (plain JSON); written whole, so a reader sees it complete or not at all."""
        self.fs.makedirs(self._path(RESULTS), exist_ok=True)
        staging = self._path(RESULTS, f".{name}.partial")
        with self.fs.open(staging, "w", encoding="utf-8") as out:
            json.dump(payload, out, sort_keys=True)
        self.fs.mv(staging, self._path(RESULTS, f"{name}.json"))

    def read_result(self, name: str) -> dict[str, Any] | None:
        """The result ``name`` a shard left, or ``None`` if none did."""
        path = self._path(RESULTS, f"{name}.json")
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r", encoding="utf-8") as src:
            return json.load(src)
