"""Candidate kinds by name: each kind knows how to build its folder and how to apply it to a loaded base.

A kind module registers one :class:`CandidateKind`; the planner, the build step, the harness and the
pipeline go through this registry and name no kind themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from zoo.candidates.context import BuildContext
from zoo.registry import Registry
from zoo.routing import RoutingHandle

if TYPE_CHECKING:  # annotations only: the spec looks its kind up here
    from zoo.candidates.spec import CandidateSpec


@dataclass
class Applied:
    """A candidate applied to a model: its routing handle when it routes (with each member's labels), else
    ``None``."""

    handle: RoutingHandle | None = None
    member_labels: list[Mapping[str, str]] = field(default_factory=list)


class CandidateKind:
    """A kind of candidate. ``artifact`` names its folder (``None``: it needs none); members are counted by
    :meth:`check`, which subclasses extend (e.g. a known method)."""

    name: str
    description: str
    min_members: int = 0
    max_members: int | None = None
    artifact: str | None = None

    def check(self, spec: CandidateSpec) -> None:
        n = len(spec.members)
        if n < self.min_members or (self.max_members is not None and n > self.max_members):
            wanted = f"{self.min_members}" + ("+" if self.max_members is None else f"..{self.max_members}")
            raise ValueError(f"a {self.name} candidate takes {wanted} members, got {n}")

    def build(self, spec: CandidateSpec, context: BuildContext, folder: Path) -> None:
        """Write the candidate's artifact into ``folder`` (new); kinds without an artifact write nothing."""

    def applied(self, spec: CandidateSpec, folder: Path | None, model: nn.Module) -> AbstractContextManager[Applied]:
        """Change ``model`` in place into the candidate for the block (undone on exit)."""
        return _unchanged()


@contextmanager
def _unchanged() -> Iterator[Applied]:
    yield Applied()


KINDS: Registry[CandidateKind] = Registry("candidate kind")


def register_kind(kind: CandidateKind) -> CandidateKind:
    return KINDS.add(kind.name, kind)


def get_kind(name: str) -> CandidateKind:
    return KINDS.known(name)
