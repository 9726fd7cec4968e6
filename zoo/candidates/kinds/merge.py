"""``merge``: the members merged by a ``zoo.merge`` method (``method``, options in ``settings``), saved in
PEFT format."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zoo.candidates.context import BuildContext
from zoo.candidates.kinds.adapter_folder import AdapterFolderKind
from zoo.candidates.kinds.registry import register_kind
from zoo.merge import get_method, merge

if TYPE_CHECKING:  # annotations only: the spec module imports the kinds
    from zoo.candidates.spec import CandidateSpec


class MergeKind(AdapterFolderKind):
    name = "merge"
    description = "a merge of the members (any zoo.merge method)"
    min_members = 1

    def check(self, spec: CandidateSpec) -> None:
        super().check(spec)
        get_method(spec.method or "")

    def build(self, spec: CandidateSpec, context: BuildContext, folder: Path) -> None:
        merged = merge([context.pool.adapter(m) for m in spec.member_ids], spec.method,
                       data=context.data_of(spec.member_ids), **spec.settings)
        merged.save_pretrained(folder, base_model_name_or_path=spec.base_model)


register_kind(MergeKind())
