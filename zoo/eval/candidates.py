"""Candidates: what gets scored, as a small serialisable spec, and one builder per kind.

A :class:`CandidateSpec` says *what* a candidate is (kind, member experts, merge method, settings); its
``key`` is a content hash of exactly that, so later flows can cache a candidate's results by it (the
base model and suite are the run's, not the candidate's, and belong in the caller's cache key).
A builder turns a spec into a change of the loaded base model for the length of a ``with`` block.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from zoo.eval.experts import ExpertPool
from zoo.eval.fold import folded_adapter
from zoo.eval.stored import stored_adapter, stored_library


@dataclass(frozen=True)
class CandidateSpec:
    """``kind`` names a :data:`CANDIDATE_KINDS` entry; ``members`` are expert repo ids, in order;
    ``method`` a merge method; ``settings`` the kind's options (merge options, router and training settings).
    ``name`` is only for display and does not enter the ``key``."""

    kind: str
    members: tuple[str, ...] = ()
    method: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CANDIDATE_KINDS:
            raise ValueError(f"unknown candidate kind {self.kind!r}; known: {sorted(CANDIDATE_KINDS)}")
        object.__setattr__(self, "members", tuple(self.members))
        object.__setattr__(self, "settings", dict(sorted(dict(self.settings).items())))
        CANDIDATE_KINDS[self.kind].check(self)

    def content(self) -> dict[str, Any]:
        """What the candidate computes: everything but the display name."""
        return {"kind": self.kind, "members": list(self.members), "method": self.method,
                "settings": dict(self.settings)}

    @property
    def key(self) -> str:
        """Stable content hash (16 hex digits) of :meth:`content`."""
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return self.name or f"{self.kind}-{self.key[:8]}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.content(), "key": self.key}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CandidateSpec:
        return cls(kind=raw["kind"], members=tuple(raw.get("members", ())), method=raw.get("method"),
                   settings=raw.get("settings", {}), name=raw.get("name"))


# A builder changes ``model`` in place for the block and yields the routing handle (or ``None``).
Builder = Callable[[CandidateSpec, nn.Module, ExpertPool, Any], AbstractContextManager]


@dataclass(frozen=True)
class CandidateKind:
    """A kind of candidate: its builder, how many members it takes, and whether it routes per token."""

    name: str
    build: Builder
    min_members: int
    max_members: int | None
    routed: bool
    description: str

    def check(self, spec: CandidateSpec) -> None:
        n = len(spec.members)
        if n < self.min_members or (self.max_members is not None and n > self.max_members):
            wanted = f"{self.min_members}" + ("+" if self.max_members is None else f"..{self.max_members}")
            raise ValueError(f"a {self.name} candidate takes {wanted} members, got {n}")


def _base(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> AbstractContextManager:
    return nullcontext(None)


@contextmanager
def _expert(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Iterator[None]:
    with folded_adapter(model, pool.adapter(spec.members[0])):
        yield None


@contextmanager
def _merge(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Iterator[None]:
    from zoo.merge import merge

    merged = merge([pool.adapter(m) for m in spec.members], spec.method or "linear", **spec.settings)
    with folded_adapter(model, merged):
        yield None


@contextmanager
def _library(spec: CandidateSpec, model: nn.Module, pool: ExpertPool, tokenizer: Any) -> Iterator[Any]:
    from zoo.eval.libraries import build_candidate_library

    handle = build_candidate_library(spec, model, pool, tokenizer).route(model)
    try:
        yield handle
    finally:
        handle.remove()


CANDIDATE_KINDS: dict[str, CandidateKind] = {
    k.name: k for k in (
        CandidateKind("base", _base, 0, 0, False, "the base model alone"),
        CandidateKind("expert", _expert, 1, 1, False, "one expert folded into the base"),
        CandidateKind("merge", _merge, 1, None, False, "a merge of the members (any zoo.merge method)"),
        CandidateKind("arrow", _library, 1, None, True, "Arrow library over the members (data-free routing)"),
        CandidateKind("phatgoose", _library, 1, None, True,
                      "PHATGOOSE library, gates trained on each member's dataset"),
        CandidateKind("adapter", stored_adapter, 0, None, False, "a stored PEFT adapter folder (settings: path)"),
        CandidateKind("library", stored_library, 1, None, True, "a stored routed library folder (settings: path)"),
    )
}
