"""The library manifest (``manifest.json``): what a routed library is made of, and how to check it.

Everything read from a manifest is validated before use. Repo ids and revisions are checked against
the hub's rules and only ever handed to a resolver, never joined onto a path; copied members live at
``experts/<index>/`` whatever the manifest says about them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.hub.adapter_ids import subfolder_problem

FORMAT = "zoo-library"
# 3: a member may be an adapter in a subfolder of its repo (``subfolder``; a version-2 reader would resolve
# the repo's root instead). 2: the router's per-member notes are opaque (``routed_by``); version 1 also listed
# PHATGOOSE's ``arrow_fallback``, which readers ignore.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class LibraryError(Exception):
    """A library folder that cannot be used: malformed manifest, missing member, hash mismatch."""


@dataclass(frozen=True)
class MemberEntry:
    """One expert of the library.

    ``repo_id`` + ``revision`` (a commit sha) name it on the hub, with ``subfolder`` when it is an adapter in
    a folder of its repo (its ``name`` is then ``repo_id/subfolder``); ``path`` is a local source (tests,
    offline builds) that loading uses only when asked to. ``copied``: its files sit in ``experts/<index>/``.
    ``routed_by`` is the router's note of how the member's routing vectors were made (its ``fit`` wrote it).
    ``labels`` is free metadata (task, skill, family) for inspection and routing accuracy.
    """

    name: str
    config_sha256: str
    weights_sha256: str
    routed_by: str
    repo_id: str | None = None
    revision: str | None = None
    path: str | None = None
    copied: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    subfolder: str = ""


@dataclass(frozen=True)
class LibraryManifest:
    """The whole manifest; ``routing_sha256`` is the hash of ``routing.safetensors``."""

    base_model: str
    base_revision: str | None
    router: str
    settings: dict[str, Any]
    members: list[MemberEntry]
    routing_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "base_model": {"name": self.base_model, "revision": self.base_revision},
            "router": {"kind": self.router, "settings": dict(self.settings)},
            "members": [asdict(m) for m in self.members],
            "routing_vectors": {"file": "routing.safetensors", "sha256": self.routing_sha256},
        }


def check_repo_id(repo_id: str) -> str:
    """A hub repo id as the hub itself accepts it (no ``..``, no absolute paths, at most ``org/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise LibraryError(f"invalid repo id {repo_id!r}: {err}") from err
    return repo_id


def check_revision(revision: str) -> str:
    """Members are pinned to a full commit sha, so a library always resolves to the same weights."""
    if not _COMMIT_SHA.fullmatch(revision):
        raise LibraryError(f"revision must be a 40-character commit sha, got {revision!r}")
    return revision


def manifest_from_json(raw: Any) -> LibraryManifest:
    """Parse and validate a ``manifest.json`` document."""
    try:
        if raw.get("format") != FORMAT or raw.get("format_version") not in READABLE_VERSIONS:
            raise LibraryError(f"not a {FORMAT} manifest of version {' or '.join(map(str, READABLE_VERSIONS))}")
        members = [_member(m) for m in raw["members"]]
        manifest = LibraryManifest(
            base_model=_str(raw["base_model"]["name"], "base_model.name"),
            base_revision=_optional_str(raw["base_model"].get("revision"), "base_model.revision"),
            router=_str(raw["router"]["kind"], "router.kind"),
            settings=_mapping(raw["router"]["settings"], "router.settings"),
            members=members,
            routing_sha256=_sha256(raw["routing_vectors"]["sha256"], "routing_vectors.sha256"),
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise LibraryError(f"malformed manifest: {err!r}") from err
    if not members:
        raise LibraryError("the manifest lists no members")
    return manifest


def _member(raw: Mapping[str, Any]) -> MemberEntry:
    repo_id = _optional_str(raw.get("repo_id"), "repo_id")
    revision = _optional_str(raw.get("revision"), "revision")
    labels = _mapping(raw.get("labels", {}), "labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise LibraryError("member labels must be strings")
    copied = raw.get("copied", False)
    if not isinstance(copied, bool):
        raise LibraryError("copied must be true or false")
    subfolder = raw.get("subfolder") or ""
    if subfolder:
        check_subfolder(repo_id or "", subfolder)
    return MemberEntry(
        name=_str(raw["name"], "name"),
        config_sha256=_sha256(raw["config_sha256"], "config_sha256"),
        weights_sha256=_sha256(raw["weights_sha256"], "weights_sha256"),
        routed_by=_str(raw["routed_by"], "routed_by"),
        repo_id=check_repo_id(repo_id) if repo_id is not None else None,
        revision=check_revision(revision) if revision is not None else None,
        path=_optional_str(raw.get("path"), "path"),
        copied=copied,
        labels=dict(labels),
        subfolder=subfolder,
    )


def check_subfolder(repo_id: str, subfolder: str) -> str:
    """An adapter folder inside a hub repo: a plain relative path (never joined onto a local path as it is)."""
    problem = subfolder_problem(repo_id, subfolder) if isinstance(subfolder, str) else "subfolder must be a string"
    if problem:
        raise LibraryError(problem)
    return subfolder


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise LibraryError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _optional_str(value: Any, name: str) -> str | None:
    return None if value is None else _str(value, name)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LibraryError(f"{name} must be a JSON object, got {value!r}")
    return dict(value)


def _sha256(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise LibraryError(f"{name} must be a sha256 hex digest, got {value!r}")
    return value
