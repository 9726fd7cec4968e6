"""Sharing a library through a hub repo: push a saved library folder, pull one back, verified both ways.

A push is one commit holding exactly the library's files (``manifest.json``, ``routing.safetensors``, the
copied ``experts/<i>/``) and a generated model card, so a pull at that commit gives back the same bytes.
The folder must load (manifest, every hash, every member) before anything is uploaded, and a pull is
loaded the same way before it is returned. A pull reads the manifest first, at one pinned commit, and
then downloads exactly the files it names, whatever else the repo holds; JSON and safetensors only:
nothing from the repo is executed or unpickled. A push refuses a repo that holds files but no library
(unless forced), and commits on top of the head it listed. The token goes to the hub client and nowhere
else.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from zoo.adapters.files import ADAPTER_FILES
from zoo.hub.adapter_ids import adapter_id
from zoo.library.library import EXPERTS, MANIFEST, ROUTING, Library, load_library, read_manifest
from zoo.library.manifest import LibraryError, LibraryManifest, check_repo_id
from zoo.library.resolve import Resolver, hub_resolver

CARD = "README.md"
# Files a push may replace in a repo that holds no library yet: what the hub puts in a new repo.
NEW_REPO_FILES = frozenset({".gitattributes", CARD})
TAGS = ("zoo-recycler", "lora", "routed-library")
DEFAULT_COMMIT_MESSAGE = "Upload a routed LoRA library (zoo recycler)"


def push_library(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool = False,
    commit_message: str = DEFAULT_COMMIT_MESSAGE,
    resolver: Resolver | None = None,
    force: bool = False,
) -> str:
    """Upload the library saved in ``folder`` to the model repo ``repo_id`` (created if missing); returns the
    commit sha.

    Members that are not copied in are resolved by ``resolver`` (default: the same hub) to check their
    hashes; a member known only by a local path is refused, since nobody else could load it. Pushing an
    unchanged library again makes no commit and returns the same sha; ``experts/`` files left in the repo by
    an earlier, bigger library are deleted. A repo holding other files but no library is refused unless
    ``force`` (its README.md and ``experts/`` would be replaced). The commit names the head that was listed,
    so a push that raced another one fails rather than deleting what the other one wrote.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    folder = Path(folder)
    library = load_library(folder, resolver=resolver or hub_resolver(endpoint=endpoint, token=token))
    files = library_files(library.manifest)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(check_repo_id(repo_id), private=private, exist_ok=True)
    head = api.model_info(repo_id)
    present = [s.rfilename for s in head.siblings or []]
    foreign = sorted(set(present) - NEW_REPO_FILES)
    if foreign and MANIFEST not in present and not force:
        raise LibraryError(f"{repo_id} already holds files and no library ({', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}); push to a new repo, or force to replace its "
                           f"{CARD} and {EXPERTS}/")
    stale = [p for p in present if p.startswith(f"{EXPERTS}/") and p not in files]
    operations = [CommitOperationAdd(path, folder / path) for path in files]
    operations.append(CommitOperationAdd(CARD, model_card(library.manifest, repo_id).encode()))
    operations += [CommitOperationDelete(path) for path in stale]
    return api.create_commit(repo_id, operations, commit_message=commit_message, parent_commit=head.sha).oid


def pull_library(
    repo_id: str,
    revision: str | None = None,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    resolver: Resolver | None = None,
    local_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Library:
    """Download the library at ``revision`` (default: ``main``) and load it, every hash checked.

    The revision is pinned to its commit first, so the manifest and the files it names come from one
    commit; only those files are downloaded. Files land in the hub cache (or ``local_dir``); members that
    are not copied in resolve through ``resolver`` (default: the same hub and cache).
    """
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    hub = {"endpoint": endpoint, "token": token}
    sha = HfApi(**hub).model_info(check_repo_id(repo_id), revision=revision).sha
    where = {"local_dir": local_dir, "cache_dir": cache_dir}
    manifest = read_manifest(hf_hub_download(repo_id, MANIFEST, revision=sha, **hub, **where))
    # Names without wildcards, so the patterns match exactly these files.
    folder = snapshot_download(repo_id, revision=sha, allow_patterns=library_files(manifest), **hub, **where)
    return load_library(folder, resolver=resolver or hub_resolver(cache_dir=cache_dir, **hub))


def library_files(manifest: LibraryManifest) -> list[str]:
    """The library's files, relative to its folder: what a push uploads."""
    experts = [f"{EXPERTS}/{i}/{name}" for i, m in enumerate(manifest.members) if m.copied for name in ADAPTER_FILES]
    return [MANIFEST, ROUTING, *experts]


def model_card(manifest: LibraryManifest, repo_id: str) -> str:
    """README.md: hub metadata (library, base model, tags) and what the library holds. Deterministic, so an
    unchanged library pushes an unchanged card."""
    front: dict[str, object] = {"library_name": "zoo-recycler"}
    try:
        front["base_model"] = check_repo_id(manifest.base_model)
    except LibraryError:
        pass  # a local path is no hub id; the manifest still names it
    front["tags"] = [*TAGS, manifest.router]
    rows = [
        f"| {i} | {_cell(m.name)} | {_cell(adapter_id(m.repo_id, m.subfolder) if m.repo_id else '-')} | {_cell(m.revision or '-')} | {_cell(m.routed_by)} | "
        f"{'copied' if m.copied else 'referenced'} | {_cell(', '.join(f'{k}={v}' for k, v in m.labels.items()))} |"
        for i, m in enumerate(manifest.members)
    ]
    base = f"`{manifest.base_model}`" + (f" (revision `{manifest.base_revision}`)" if manifest.base_revision else "")
    return f"""---
{yaml.safe_dump(front, sort_keys=False)}---

# {repo_id.split("/")[-1]}

A routed library of {len(manifest.members)} LoRA experts over {base}, built by zoo recycler.
Each prompt is routed to its top experts by **{manifest.router}** with these settings (the `routed by` column says how
each member's routing vectors were made):

```json
{json.dumps(manifest.settings, indent=2, sort_keys=True)}
```

| # | member | repo | revision | routed by | weights | labels |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

`manifest.json` holds the sha256 of every file (`routing.safetensors`, `experts/<i>/`); loading checks them all.

```bash
zoo library pull {repo_id} DIR
```

```python
from zoo.library import pull_library

library = pull_library("{repo_id}")
library.route(model)  # the base model, loaded by you; routes in place
```
"""


def _cell(text: str) -> str:
    """Text from the manifest inside a markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
