"""The experts candidates are built from: where each adapter folder is, its training data, its labels.

Candidates name experts by adapter id (the repo id, with ``/subfolder`` for an adapter in a subfolder of its
repo: ``zoo.hub.adapter_ids``); an :class:`ExpertPool` resolves them to folders, loads each adapter
once (merges, clusters and libraries share one copy) and reads training examples with one rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zoo.adapters.factors import Adapter
from zoo.adapters.load import load_adapter
from zoo.hub.adapter_ids import adapter_id


@dataclass(frozen=True)
class Expert:
    """``train_file``: JSONL of its training examples (``prompt``, ``target``), ``None`` when unknown;
    ``labels`` (task, skill, family) when known, for routing accuracy and inspection; ``path`` is the adapter's
    own folder (the subfolder's, for one in a subfolder of its repo)."""

    repo_id: str
    path: Path
    revision: str | None = None
    train_file: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    subfolder: str = ""

    @property
    def adapter_id(self) -> str:
        return adapter_id(self.repo_id, self.subfolder)


def read_train_pairs(path: Path) -> list[tuple[str, str]]:
    """The (prompt, target) rows of a JSONL file; rows that are not JSON objects with two strings are skipped
    (a dataset from the hub is untrusted: one bad row must not cost the expert all its data)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("target"), str):
            pairs.append((row["prompt"], row["target"]))
    return pairs


@dataclass
class ExpertPool:
    """Experts by adapter id, in a fixed order (the order of libraries and merges built from them)."""

    experts: dict[str, Expert]
    _loaded: dict[str, Adapter] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, experts: Iterable[Expert]) -> ExpertPool:
        return cls({e.adapter_id: e for e in experts})

    @property
    def names(self) -> list[str]:
        """The experts' adapter ids, in pool order."""
        return list(self.experts)

    def __getitem__(self, name: str) -> Expert:
        try:
            return self.experts[name]
        except KeyError:
            raise KeyError(f"unknown expert {name!r}; the pool holds {sorted(self.experts)}") from None

    def adapter(self, name: str) -> Adapter:
        """The loaded adapter (cached)."""
        if name not in self._loaded:
            self._loaded[name] = load_adapter(self[name].path)
        return self._loaded[name]

    def train_pairs(self, name: str) -> list[tuple[str, str]]:
        """(prompt, target) pairs the expert was trained on; empty when its data is unknown."""
        file = self[name].train_file
        return read_train_pairs(file) if file is not None and file.is_file() else []
