"""A candidate as data: one spec for every kind, with the one content key it is built, stored and scored under.

The key hashes what the candidate computes: its kind, its members (adapter id, and commit when known), the
method (a merge method, or a library's router), the settings and the base model it is for. The display
name and where it came from (clustering, cluster) do not enter it, so one candidate has one key whoever
planned it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.candidates.kinds import get_kind
from zoo.content import content_key
from zoo.hub.adapter_ids import adapter_id, split_adapter_id


@dataclass(frozen=True, order=True)
class Member:
    """An expert by hub repo id (and its folder in the repo, '' at the root), pinned to a commit when it came
    from a hub (``None`` for a local folder)."""

    repo_id: str
    revision: str | None = None
    subfolder: str = ""

    @property
    def adapter_id(self) -> str:
        """The repo id, with ``/subfolder`` for an adapter in a subfolder: the expert's name downstream."""
        return adapter_id(self.repo_id, self.subfolder)

    @property
    def ref(self) -> str:
        """``adapter_id@revision`` (or the adapter id alone): how members are written in keys and catalog rows.
        A root adapter's ref is its repo id's, as before subfolders were read, so its keys stay."""
        return f"{self.adapter_id}@{self.revision}" if self.revision else self.adapter_id

    @classmethod
    def parse(cls, ref: str) -> Member:
        adapter, _, revision = ref.partition("@")
        repo_id, subfolder = split_adapter_id(adapter)
        return cls(repo_id, revision or None, subfolder)


@dataclass(frozen=True)
class CandidateSpec:
    """``kind`` names a registered candidate kind (``zoo.candidates.kinds``); ``members`` are in merge / library
    order; ``method`` is the merge method or the library's router; ``settings`` the method's options."""

    kind: str
    members: tuple[Member, ...] = ()
    method: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    base_model: str | None = None
    base_revision: str | None = None
    clustering_id: str | None = None
    cluster: int | None = None

    def __post_init__(self) -> None:
        members = tuple(m if isinstance(m, Member) else Member.parse(m) for m in self.members)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "settings", dict(sorted(dict(self.settings).items())))
        get_kind(self.kind).check(self)

    def content(self) -> dict[str, Any]:
        """What the candidate computes: everything but its name and provenance."""
        return {"kind": self.kind, "members": [m.ref for m in self.members], "method": self.method,
                "settings": dict(self.settings), "base_model": self.base_model, "base_revision": self.base_revision}

    @property
    def key(self) -> str:
        return content_key(self.content())

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}-{self.key[:8]}"

    @property
    def member_ids(self) -> list[str]:
        """The members' adapter ids (their names in an expert pool), in order."""
        return [m.adapter_id for m in self.members]

    @property
    def artifact(self) -> str | None:
        """The candidate's folder, relative to a candidates directory (``None`` when it needs none)."""
        folder = get_kind(self.kind).artifact
        return f"{self.key}/{folder}" if folder else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.content(), "clustering_id": self.clustering_id, "cluster": self.cluster,
                "key": self.key}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CandidateSpec:
        return cls(kind=raw["kind"], members=tuple(Member.parse(m) for m in raw.get("members", ())),
                   method=raw.get("method"), settings=raw.get("settings") or {}, name=raw.get("name"),
                   base_model=raw.get("base_model"), base_revision=raw.get("base_revision"),
                   clustering_id=raw.get("clustering_id"), cluster=raw.get("cluster"))
