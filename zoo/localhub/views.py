"""The JSON the hub API returns for repos, listings and trees, shaped as ``huggingface_hub`` parses it.

Field names and defaults follow the real hub: a listing returns a short default set of fields, ``full``
adds the rest, ``cardData`` adds the card, and ``expand`` returns exactly the fields asked for (plus
``id``). Repo info returns everything unless ``expand`` narrows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from zoo.localhub.repos import MODEL, Repo

# The ``expand`` values the client accepts (ExpandModelProperty_T / ExpandDatasetProperty_T); a value
# outside these is a client error. Some (config, gguf, ...) are accepted but never filled here.
EXPANDABLE = {
    "model": frozenset(
        "author baseModels cardData childrenModelCount config createdAt disabled downloads downloadsAllTime "
        "evalResults gated gguf inference inferenceProviderMapping lastModified library_name likes mask_token "
        "model-index pipeline_tag private resourceGroup safetensors sha siblings spaces tags transformersInfo "
        "trendingScore usedStorage widgetData".split()
    ),
    "dataset": frozenset(
        "author cardData citation createdAt description disabled downloads downloadsAllTime gated lastModified "
        "likes mainSize paperswithcode_id private resourceGroup sha siblings tags trendingScore "
        "usedStorage".split()
    ),
}
_LIST_DEFAULT = {
    "model": ("likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag", "library_name", "createdAt"),
    "dataset": (
        "author", "sha", "lastModified", "private", "gated", "disabled", "downloads", "likes", "trendingScore",
        "tags", "createdAt",
    ),
}  # fmt: skip
_LIST_FULL = ("author", "sha", "lastModified", "gated", "disabled", "siblings")

# Sort keys of the API (and the snake_case spellings of the Python client, for raw callers).
SORT_KEYS = {
    "lastModified": "lastModified", "last_modified": "lastModified",
    "createdAt": "createdAt", "created_at": "createdAt",
    "downloads": "downloads", "likes": "likes",
    "trendingScore": "trendingScore", "trending_score": "trendingScore",
    "id": "id",
}  # fmt: skip


def _object_id(repo: Repo) -> str:
    """A stable stand-in for the hub's database id (``_id``), which the client keeps but never uses."""
    return hashlib.sha1(f"{repo.type}/{repo.id}".encode()).hexdigest()[:24]  # noqa: S324


def repo_fields(repo: Repo, *, sibling_details: bool) -> dict[str, Any]:
    """Every field this hub knows about a repo; None values are left out, as the hub does."""
    meta = repo.meta
    siblings = [
        {"rfilename": f.path, "size": f.size, "blobId": f.digest.blob_id} if sibling_details else {"rfilename": f.path}
        for f in repo.files
    ]
    fields: dict[str, Any] = {
        "_id": _object_id(repo),
        "id": repo.id,
        "author": repo.author,
        "sha": repo.sha,
        "lastModified": repo.last_modified,
        "createdAt": repo.created_at,
        "private": meta.get("private", False),
        "gated": meta.get("gated", False),
        "disabled": False,
        "downloads": meta.get("downloads", 0),
        "downloadsAllTime": meta.get("downloadsAllTime", meta.get("downloads", 0)),
        "likes": meta.get("likes", 0),
        "trendingScore": 0,
        "tags": repo.tags,
        "cardData": repo.card,
        "siblings": siblings,
        "usedStorage": sum(f.size for f in repo.files),
    }
    if repo.type == MODEL:
        card = repo.card or {}
        fields.update(
            modelId=repo.id,
            library_name=repo.library_name,
            pipeline_tag=card.get("pipeline_tag"),
            safetensors=repo.safetensors,
            spaces=[],
        )
    else:
        fields["mainSize"] = fields["usedStorage"]
    return {k: v for k, v in fields.items() if v is not None}


def info_json(repo: Repo, expand: list[str]) -> dict[str, Any]:
    """``GET /api/{type}s/{id}``: everything, or only the ``expand`` fields."""
    fields = repo_fields(repo, sibling_details=True)
    if not expand:
        return fields
    return _pick(fields, expand)


def list_item_json(repo: Repo, *, expand: list[str], full: bool, card_data: bool) -> dict[str, Any]:
    """One entry of ``GET /api/{type}s``."""
    fields = repo_fields(repo, sibling_details=False)
    if expand:
        return _pick(fields, expand)
    names = list(_LIST_DEFAULT[repo.type])
    if full:
        names += _LIST_FULL
    if card_data or full:
        names.append("cardData")
    if repo.type == MODEL:
        names.append("modelId")
    return _pick(fields, names)


def _pick(fields: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    keep = {"_id", "id", *names}
    return {k: v for k, v in fields.items() if k in keep}


def filter_repos(
    repos: list[Repo],
    *,
    search: list[str],
    author: str | None,
    tags: list[str],
    pipeline_tag: str | None,
    gated: bool | None,
) -> list[Repo]:
    """The hub's list filters: every search term is a case-insensitive substring of the id, every tag is present."""
    terms = [s.lower() for s in search if s]
    out = []
    for repo in repos:
        if author and repo.author != author:
            continue
        if any(t not in repo.id.lower() for t in terms):
            continue
        if tags and not set(tags) <= set(repo.tags):
            continue
        if pipeline_tag and (repo.card or {}).get("pipeline_tag") != pipeline_tag:
            continue
        if gated is not None and bool(repo.meta.get("gated", False)) != gated:
            continue
        out.append(repo)
    return out


def sort_repos(repos: list[Repo], key: str | None, descending: bool) -> list[Repo]:
    """Sorted by a hub sort key (ties by id, ascending); by id when no key is given."""
    repos = sorted(repos, key=lambda r: r.id)
    if key is None:
        return repos
    if key == "id":
        return repos[::-1] if descending else repos
    values = {
        "lastModified": lambda r: r.last_modified,
        "createdAt": lambda r: r.created_at,
        "downloads": lambda r: r.meta.get("downloads", 0),
        "likes": lambda r: r.meta.get("likes", 0),
        "trendingScore": lambda r: 0,
    }[key]
    return sorted(repos, key=values, reverse=descending)  # stable: ties keep id order


def tree_json(repo: Repo, folder: str, *, recursive: bool, expand: bool) -> list[dict[str, Any]] | None:
    """``GET .../tree/{rev}/{folder}``: files and folders under ``folder`` ("" = root); None if no such folder."""
    directories = repo.directories()
    if folder and folder not in directories:
        return None
    prefix = f"{folder}/" if folder else ""

    def wanted(path: str) -> bool:
        return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

    entries: list[dict[str, Any]] = []
    for d in directories:
        if wanted(d):
            entries.append({"type": "directory", "oid": _tree_oid(repo, d), "size": 0, "path": d})
    for f in repo.files:
        if wanted(f.path):
            entry: dict[str, Any] = {"type": "file", "oid": f.digest.blob_id, "size": f.size, "path": f.path}
            if expand:
                entry["lastCommit"] = {"id": repo.sha, "title": "Snapshot of the local hub", "date": repo.last_modified}
            entries.append(entry)
    entries.sort(key=lambda e: e["path"])
    return entries


def _tree_oid(repo: Repo, folder: str) -> str:
    digest = hashlib.sha1()  # noqa: S324 (an id, not security)
    for f in repo.files:
        if f.path.startswith(folder + "/"):
            digest.update(f"{f.path}\0{f.digest.blob_id}\n".encode())
    return digest.hexdigest()
