"""The demo zoo's experts as an :class:`~zoo.candidates.ExpertPool`, labels and datasets from ``zoo.json``."""

from __future__ import annotations

import json
from pathlib import Path

from zoo.candidates import Expert, ExpertPool

DATA_FROM = ("zoo", "cards")


def demo_zoo_experts(zoo_dir: str | Path, data_from: str = "zoo") -> ExpertPool:
    """Every expert of a built demo zoo, with its labels (task, skill, family) and its dataset's train file:
    every expert's (``data_from="zoo"``, what the zoo's builder knows) or only where the expert's card names its
    dataset (``"cards"``, what the pipeline can know from the hub)."""
    if data_from not in DATA_FROM:
        raise ValueError(f"data_from must be one of {DATA_FROM}, got {data_from!r}")
    zoo_dir = Path(zoo_dir)
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    return ExpertPool.of(
        Expert(repo_id=e["repo_id"], path=zoo_dir / e["repo_id"],
               train_file=(zoo_dir / "datasets" / e["dataset"] / "train.jsonl"
                           if data_from == "zoo" or e["dataset_on_card"] else None),
               labels={k: e[k] for k in ("task", "skill", "family")})
        for e in manifest["experts"]
    )
