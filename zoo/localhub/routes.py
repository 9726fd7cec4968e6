"""Which hub endpoint a request path names.

Paths are split on the *raw* (still percent-encoded) path, then each segment is decoded: the client
encodes a revision with ``quote(rev, safe="")`` (so ``refs%2Fpr%2F1`` is one segment) but a file path
with its slashes kept, and a decoded path could no longer tell the two apart. What a segment decodes
to (``..``, ``%2e%2e``, NUL, ...) is judged later by ``paths.safe_relpath``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

LIST, INFO, TREE, FILE, UNKNOWN = "list", "info", "tree", "file", "unknown"
CDN = "cdn"  # where a realistic hub redirects LFS downloads: /cdn-lfs/{type}/{org}/{name}/{sha}/{path}
CDN_PREFIX = "/cdn-lfs"
# The write API (POST; served only by a writable hub, see ``writes.py``).
CREATE, VALIDATE_YAML, PREUPLOAD, COMMIT = "create", "validate-yaml", "preupload", "commit"
WRITES = frozenset({CREATE, VALIDATE_YAML, PREUPLOAD, COMMIT})
_API_TYPES = {"models": "model", "datasets": "dataset"}


@dataclass(frozen=True)
class Target:
    """A parsed request path; ``path`` is decoded but not yet validated."""

    endpoint: str
    repo_type: str = "model"
    repo_id: str = ""
    revision: str | None = None
    path: str = ""


def parse_target(raw_path: str) -> Target:
    """Map ``/api/{models,datasets}[/org/name[/revision/rev | /tree/rev[/path] | /{preupload,commit}/rev]]``,
    ``/api/repos/create``, ``/api/validate-yaml``, ``[/datasets]/org/name/resolve/rev/path`` and the CDN path to a Target;
    anything else is UNKNOWN."""
    segments = raw_path.split("/")[1:]
    if segments in (["api", "repos", "create"], ["api", "validate-yaml"]):
        return Target(CREATE if segments[1] == "repos" else VALIDATE_YAML)
    if len(segments) >= 6 and f"/{segments[0]}" == CDN_PREFIX and segments[1] in _API_TYPES.values():
        return Target(CDN, segments[1], _repo_id(segments[2:]), unquote(segments[4]), _join(segments[5:]))
    if len(segments) >= 2 and segments[0] == "api" and segments[1] in _API_TYPES:
        return _api_target(_API_TYPES[segments[1]], segments[2:])
    repo_type = "model"
    if segments and segments[0] == "datasets":
        repo_type, segments = "dataset", segments[1:]
    if len(segments) >= 5 and segments[2] == "resolve":
        return Target(FILE, repo_type, _repo_id(segments), unquote(segments[3]), _join(segments[4:]))
    return Target(UNKNOWN)


def _api_target(repo_type: str, rest: list[str]) -> Target:
    if rest and rest[-1] == "":  # tolerate a trailing slash on API routes
        rest = rest[:-1]
    if not rest:
        return Target(LIST, repo_type)
    if len(rest) < 2:
        return Target(UNKNOWN)
    repo_id = _repo_id(rest)
    if len(rest) == 2:
        return Target(INFO, repo_type, repo_id)
    if len(rest) == 4 and rest[2] == "revision":
        return Target(INFO, repo_type, repo_id, unquote(rest[3]))
    if len(rest) == 4 and rest[2] in (PREUPLOAD, COMMIT):
        return Target(rest[2], repo_type, repo_id, unquote(rest[3]))
    if len(rest) >= 4 and rest[2] == "tree":
        return Target(TREE, repo_type, repo_id, unquote(rest[3]), _join(rest[4:]))
    return Target(UNKNOWN)


def _repo_id(segments: list[str]) -> str:
    return f"{unquote(segments[0])}/{unquote(segments[1])}"


def _join(segments: list[str]) -> str:
    return "/".join(unquote(s) for s in segments)
