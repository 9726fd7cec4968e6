"""``library``: a routed library over the members; ``method`` names the router, ``settings`` its settings
(router and fitting). Saved with its experts copied in, so it loads without a hub."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from zoo.candidates.context import BuildContext
from zoo.candidates.kinds.registry import Applied, CandidateKind, register_kind
from zoo.library import MemberSource, build_library, load_library, save_library
from zoo.routing import get_router

if TYPE_CHECKING:  # annotations only: the spec module imports the kinds
    from zoo.candidates.spec import CandidateSpec

LIBRARY = "library"


class LibraryKind(CandidateKind):
    name = "library"
    description = "a routed library over the members (any zoo.routing router)"
    min_members = 1
    artifact = LIBRARY

    def check(self, spec: CandidateSpec) -> None:
        super().check(spec)
        get_router(spec.method or "")

    def build(self, spec: CandidateSpec, context: BuildContext, folder: Path) -> None:
        sources = []
        for member in spec.members:
            expert = context.pool[member.adapter_id]
            hub = member.revision is not None  # a hub member: the manifest names where it lives
            sources.append(MemberSource(expert.path, repo_id=member.repo_id if hub else None, revision=member.revision,
                                        name=member.adapter_id, labels=dict(expert.labels),
                                        subfolder=member.subfolder if hub else ""))
        library = build_library(sources, base_model=spec.base_model or "base", router=spec.method,
                                settings=spec.settings, data=context.data_of(spec.member_ids),
                                base_revision=spec.base_revision)
        save_library(library, folder, copy_experts=True)

    @contextmanager
    def applied(self, spec: CandidateSpec, folder: Path | None, model: nn.Module) -> Iterator[Applied]:
        library = load_library(folder)
        handle = library.route(model)
        try:
            yield Applied(handle, [dict(m.labels) for m in library.manifest.members])
        finally:
            handle.remove()


register_kind(LibraryKind())
