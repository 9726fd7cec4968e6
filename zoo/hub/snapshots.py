"""The files the recycling steps need from the hub, pinned and cached: adapters, the base model, expert data.

Everything goes through ``huggingface_hub`` (its cache, retries and ETag checks) with explicit
allow-lists: safetensors weights and JSON/tokenizer files only, so no pickle and no remote code ever
lands. File names from the hub are only passed to the client, which keeps them inside its cache.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from zoo.hub.adapter_ids import adapter_id
from zoo.library.manifest import check_repo_id, check_revision
from zoo.library.resolve import adapter_files

# What a causal LM needs to load with transformers; weights as safetensors only.
BASE_MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
                    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# A dataset's training split as JSON lines: ``train.jsonl`` or ``data/train-*.jsonl``.
_TRAIN_FILE = re.compile(r"^(?:data/)?train[\w.-]*\.jsonl$")


@dataclass(frozen=True)
class Hub:
    """Where to fetch from and where to cache (``None``: the client's defaults); the token stays out of
    ``repr`` so that no log or error message can carry it."""

    endpoint: str | None = None
    cache_dir: Path | None = None
    token: str | bool | None = field(default=None, repr=False)


def adapter_snapshot(hub: Hub, repo_id: str, sha: str, subfolder: str = "") -> Path:
    """Local folder with the adapter's config and safetensors weights at commit ``sha``: the repo's root, or
    ``subfolder`` of it for an adapter in a subfolder (only that folder's adapter files are downloaded)."""
    from huggingface_hub import snapshot_download

    files = adapter_files(repo_id, subfolder)
    folder = snapshot_download(check_repo_id(repo_id), revision=check_revision(sha), allow_patterns=files,
                               endpoint=hub.endpoint, cache_dir=hub.cache_dir, token=hub.token)
    missing = [f for f in files if not (Path(folder) / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{adapter_id(repo_id, subfolder)}@{sha[:10]} lacks {missing}")
    return Path(folder) / subfolder if subfolder else Path(folder)


def current_revision(hub: Hub, repo_id: str) -> str:
    """The commit sha a model repo is at now (candidates are pinned to it)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token=hub.token).model_info(check_repo_id(repo_id)).sha


def base_model_snapshot(hub: Hub, repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """Local folder of the base model (config, tokenizer, safetensors weights) and its commit sha."""
    from huggingface_hub import snapshot_download

    sha = revision or current_revision(hub, repo_id)
    # Plain files, not the cache's symlinks into its blob store: the folder is logged as an MLflow artifact.
    local_dir = None
    if hub.cache_dir:
        local_dir = hub.cache_dir / "base-models" / repo_id.replace("/", "--") / check_revision(sha)
    folder = snapshot_download(repo_id, revision=sha, allow_patterns=list(BASE_MODEL_FILES), endpoint=hub.endpoint,
                               cache_dir=hub.cache_dir, local_dir=local_dir, token=hub.token)
    if not list(Path(folder).glob("*.safetensors")):
        raise FileNotFoundError(f"base model {repo_id} has no safetensors weights (pickles are never loaded)")
    return Path(folder), sha


@dataclass(frozen=True)
class ExpertData:
    """An expert's training data, downloaded from the dataset its card names; ``labels`` (task, skill,
    family) are read from the rows when they carry them, for routing accuracy."""

    dataset_id: str
    train_file: Path
    labels: dict[str, str]


def expert_data(hub: Hub, dataset_ids: list[str]) -> ExpertData | None:
    """The first named dataset with a JSONL training split whose rows have ``prompt`` and ``target``.

    ``None`` when none does: the expert's data is then unknown (PHATGOOSE routes it by its Arrow prototype).
    """
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=hub.endpoint, token=hub.token)
    for dataset_id in dataset_ids:
        try:
            info = api.dataset_info(check_repo_id(dataset_id), files_metadata=False)
            names = sorted(s.rfilename for s in info.siblings or [] if _TRAIN_FILE.match(s.rfilename))
            if not names:
                continue
            path = Path(hf_hub_download(dataset_id, names[0], repo_type="dataset", revision=info.sha,
                                        endpoint=hub.endpoint, cache_dir=hub.cache_dir, token=hub.token))
        except (HfHubHTTPError, ValueError, OSError):
            continue  # a dataset that is gone or malformed is simply not usable data
        first = _first_row(path)
        if first is not None and isinstance(first.get("prompt"), str) and isinstance(first.get("target"), str):
            labels = {k: first[k] for k in ("task", "skill", "family") if isinstance(first.get(k), str)}
            return ExpertData(dataset_id, path, labels)
    return None


def _first_row(path: Path) -> dict | None:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return row if isinstance(row, dict) else None
    return None
