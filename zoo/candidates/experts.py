"""The experts candidates are built from: where each adapter folder is, its training data, its labels.

Candidates name experts by repo id; an :class:`ExpertPool` resolves them to folders, loads each adapter
once (merges, clusters and libraries share one copy) and reads training examples with one rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zoo.adapters.factors import Adapter
from zoo.adapters.load import load_adapter


@dataclass(frozen=True)
class Expert:
    """``train_file``: JSONL of its training examples (``prompt``, ``target``), ``None`` when unknown;
    ``labels`` (task, skill, family) when known, for routing accuracy and inspection."""

    repo_id: str
    path: Path
    revision: str | None = None
    train_file: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


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
    """Experts by repo id, in a fixed order (the order of libraries and merges built from them)."""

    experts: dict[str, Expert]
    _loaded: dict[str, Adapter] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, experts: Iterable[Expert]) -> ExpertPool:
        return cls({e.repo_id: e for e in experts})

    @property
    def repo_ids(self) -> list[str]:
        return list(self.experts)

    def __getitem__(self, repo_id: str) -> Expert:
        try:
            return self.experts[repo_id]
        except KeyError:
            raise KeyError(f"unknown expert {repo_id!r}; the pool holds {sorted(self.experts)}") from None

    def adapter(self, repo_id: str) -> Adapter:
        """The loaded adapter (cached)."""
        if repo_id not in self._loaded:
            self._loaded[repo_id] = load_adapter(self[repo_id].path)
        return self._loaded[repo_id]

    def train_pairs(self, repo_id: str) -> list[tuple[str, str]]:
        """(prompt, target) pairs the expert was trained on; empty when its data is unknown."""
        file = self[repo_id].train_file
        return read_train_pairs(file) if file is not None and file.is_file() else []
