"""An adapter's id: its repo id, and ``<repo id>/<subfolder>`` for one in a subfolder of its repo.

A repo may hold several adapters (PEFT's named adapters in ``<name>/``, a trainer's ``checkpoint-*/``).
Downstream of the catalog each is an expert of its own, named by this one string in clusters, candidate
keys, manifests and pools. An adapter at its repo's root keeps the bare repo id, so nothing named before
subfolders were read changes name. The id splits back without a catalog because hub repo ids have an
owner (``owner/name``): a subfolder adapter of a repo without one is refused (``subfolder_problem``).
"""

from __future__ import annotations

# Characters that would make ``<id>@<revision>`` (how candidates write their members) ambiguous.
_RESERVED = "@"


def adapter_id(repo_id: str, subfolder: str = "") -> str:
    """``repo_id`` for the adapter at the repo's root, ``repo_id/subfolder`` for one in a subfolder."""
    problem = subfolder_problem(repo_id, subfolder) if subfolder else None
    if problem:
        raise ValueError(problem)
    return f"{repo_id}/{subfolder}" if subfolder else repo_id


def split_adapter_id(adapter: str) -> tuple[str, str]:
    """``(repo_id, subfolder)`` of an adapter id (``subfolder`` is '' at the repo's root)."""
    parts = adapter.split("/", 2)
    if len(parts) < 3:
        return adapter, ""
    return f"{parts[0]}/{parts[1]}", parts[2]


def subfolder_problem(repo_id: str, subfolder: str) -> str | None:
    """Why the adapter in ``subfolder`` of ``repo_id`` cannot be named by an adapter id (``None``: it can)."""
    if "/" not in repo_id:
        return f"an adapter folder in a repo without an owner ({repo_id!r}) cannot be told from a repo id"
    if any(c in subfolder for c in _RESERVED) or subfolder.startswith("/") or subfolder.endswith("/"):
        return f"adapter folder name {subfolder!r} is not supported (no '@', no leading or trailing '/')"
    if any(part in ("", ".", "..") for part in subfolder.split("/")):
        return f"adapter folder name {subfolder!r} is not a plain relative path"
    return None
