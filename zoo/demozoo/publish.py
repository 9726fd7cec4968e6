"""Writing hub repos into a folder: model cards with YAML front matter, hub statistics, task datasets.

Layout served by the local hub: ``<root>/<org>/<name>/`` for models and ``<root>/datasets/<org>/<name>/``
for datasets. ``.hub.json`` holds what only the hub knows (downloads, likes).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from zoo.demozoo.tasks import TaskSpec, write_jsonl

HUB_STATS = ".hub.json"


def repo_dir(root: Path, repo_id: str, dataset: bool = False) -> Path:
    path = root / "datasets" / repo_id if dataset else root / repo_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_card(repo: Path, meta: dict, body: str) -> None:
    """``README.md`` with YAML front matter, as the hub parses it into ``cardData``."""
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    (repo / "README.md").write_text(f"---\n{header}---\n\n{body.strip()}\n", encoding="utf-8")


def write_hub_stats(repo: Path, downloads: int, likes: int) -> None:
    (repo / HUB_STATS).write_text(json.dumps({"downloads": downloads, "likes": likes}) + "\n")


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def publish_dataset(root: Path, task: TaskSpec, downloads: int) -> Path:
    """The task's examples as JSONL (``train`` only for held-in tasks) with a dataset card."""
    repo = repo_dir(root, task.dataset, dataset=True)
    files = [("train", task.train), ("test", task.test)] if task.train else [("test", task.test)]
    for split, examples in files:
        write_jsonl(repo / f"{split}.jsonl", examples)
    meta = {
        "license": "cc-by-4.0",
        "pretty_name": f"Demo zoo task {task.name}",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["demo-zoo", "synthetic", task.family, task.skill, task.kind, task.split],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"{s}.jsonl"} for s, _ in files]}],
    }
    how = {
        "trained": "Experts of the demo zoo train on `train.jsonl`; `test.jsonl` holds inputs training never saw.",
        "paraphrase": "Held out: the skill under a prompt template that no expert saw in training.",
        "unseen-skill": "Held out: a skill of a known family that no expert was trained on.",
        "composition": f"Held out: the skills {' then '.join(task.components)} applied in turn.",
    }[task.kind]
    body = (f"# {task.name}\n\nSynthetic task of the demo zoo: family `{task.family}`, skill `{task.skill}`, "
            f"split `{task.split}`.\n\n{how}\n\nFields: prompt, target, task, skill, family, template, split.")
    write_card(repo, meta, body)
    write_hub_stats(repo, downloads, downloads // 40)
    return repo
