"""``expert``: one hub adapter as it is; its files are copied verbatim."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.adapters.files import ADAPTER_FILES
from zoo.candidates.context import BuildContext
from zoo.candidates.kinds.adapter_folder import AdapterFolderKind
from zoo.candidates.kinds.registry import register_kind

if TYPE_CHECKING:  # annotations only: the spec module imports the kinds
    from zoo.candidates.spec import CandidateSpec


class ExpertKind(AdapterFolderKind):
    name = "expert"
    description = "one expert folded into the base"
    min_members = max_members = 1

    def build(self, spec: CandidateSpec, context: BuildContext, folder: Path) -> None:
        source = context.pool[spec.members[0].adapter_id].path
        folder.mkdir(parents=True)
        for name in ADAPTER_FILES:
            shutil.copyfile(source / name, folder / name)


register_kind(ExpertKind())
