"""The demo zoo's experts as an :class:`~zoo.candidates.ExpertPool`, labels and datasets from ``zoo.json``."""

from __future__ import annotations

import json
from pathlib import Path

from zoo.candidates import Expert, ExpertPool


def demo_zoo_experts(zoo_dir: str | Path) -> ExpertPool:
    """Every expert of a built demo zoo, with its labels (task, skill, family) and its dataset's train file."""
    zoo_dir = Path(zoo_dir)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    return ExpertPool.of(
        Expert(repo_id=e["repo_id"], path=zoo_dir / e["repo_id"],
               train_file=zoo_dir / "datasets" / e["dataset"] / "train.jsonl",
               labels={k: e[k] for k in ("task", "skill", "family")})
        for e in manifest["experts"]
    )
