"""Validation of names that come from a request or from disk.

A request names a repo and a file inside it; neither is ever used as a filesystem path as is.
Repo ids must look like hub ids, and a file path is only ever looked up in the scanned file list of
its repo (see ``repos.py``), after these checks have refused anything that could leave the repo.
"""

from __future__ import annotations

import re

# The hub's own rule for each half of ``org/name``: ASCII word chars, '-', '.', not starting or ending
# with '-' or '.', at most 96 chars.
_ID_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?")

# Per-repo metadata (downloads, likes, ...): part of the served folder's layout, never a repo file.
HUB_META_FILE = ".hub.json"

# Folders of a repo that are bookkeeping, not content (git itself, huggingface_hub's local_dir cache).
SKIPPED_DIRS = frozenset({".git", ".cache"})


def is_valid_id_part(part: str) -> bool:
    """True if ``part`` can be an org or a repo name (and therefore a folder name we may open)."""
    return bool(_ID_PART.fullmatch(part)) and ".." not in part


def split_repo_id(repo_id: str) -> tuple[str, str] | None:
    """``org/name`` -> (org, name), or None when it is not a valid two-part hub id."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(is_valid_id_part(p) for p in parts):
        return None
    return parts[0], parts[1]


def safe_relpath(path: str) -> str | None:
    """Normalise a requested in-repo path, or None if it could escape the repo or is malformed.

    Refuses absolute paths, empty/``.``/``..`` segments, backslashes (a separator on Windows clients),
    NUL and other control characters. A valid path is then only served if the repo's scanned file
    list holds it, which leaves out ``.hub.json``, ``.git/`` and symlinks leading out of the repo.
    """
    if not path or path.startswith("/") or "\\" in path:
        return None
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        return None
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return path
