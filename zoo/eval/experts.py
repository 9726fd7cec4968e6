"""The experts a harness run may use: where each adapter lives, what it was trained for, on which data.

Candidates name experts by repo id; the pool resolves them to folders, loads each adapter once, and
knows the labels (task, skill, family) that oracle selection and routing accuracy are measured with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zoo.adapters.factors import Adapter


@dataclass(frozen=True)
class PoolExpert:
    """``train_file``: JSONL of its training examples (prompt, target), for PHATGOOSE gates; ``None`` if unknown."""

    repo_id: str
    path: Path
    task: str | None = None
    skill: str | None = None
    family: str | None = None
    train_file: Path | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {k: v for k, v in (("task", self.task), ("skill", self.skill), ("family", self.family)) if v}


@dataclass
class ExpertPool:
    """Experts by repo id, in a fixed order (the order of libraries and merges built from them)."""

    experts: dict[str, PoolExpert]
    _loaded: dict[str, Adapter] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, experts: Iterable[PoolExpert]) -> ExpertPool:
        return cls({e.repo_id: e for e in experts})

    @property
    def repo_ids(self) -> list[str]:
        return list(self.experts)

    def __getitem__(self, repo_id: str) -> PoolExpert:
        try:
            return self.experts[repo_id]
        except KeyError:
            raise KeyError(f"unknown expert {repo_id!r}; the pool holds {sorted(self.experts)}") from None

    def adapter(self, repo_id: str) -> Adapter:
        """The loaded adapter (cached: merges, clusters and libraries share one copy)."""
        from zoo.adapters import load_adapter

        if repo_id not in self._loaded:
            self._loaded[repo_id] = load_adapter(self[repo_id].path)
        return self._loaded[repo_id]

    def train_examples(self, repo_id: str) -> list[tuple[str, str]]:
        """(prompt, target) pairs the expert was trained on; empty when its data is unknown."""
        file = self[repo_id].train_file
        if file is None or not file.exists():
            return []
        rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(r["prompt"], r["target"]) for r in rows]


def demo_zoo_experts(zoo_dir: str | Path) -> ExpertPool:
    """Every expert of a built demo zoo, with its labels and dataset from ``zoo.json``."""
    zoo_dir = Path(zoo_dir)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    return ExpertPool.of(
        PoolExpert(repo_id=e["repo_id"], path=zoo_dir / e["repo_id"], task=e["task"], skill=e["skill"],
                   family=e["family"], train_file=zoo_dir / "datasets" / e["dataset"] / "train.jsonl")
        for e in manifest["experts"]
    )
