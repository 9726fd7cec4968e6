"""Kinds whose artifact is one PEFT adapter folder, folded into the base weights when applied."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from zoo.adapters.fold import folded
from zoo.adapters.load import load_adapter
from zoo.candidates.kinds.registry import Applied, CandidateKind

if TYPE_CHECKING:  # annotations only: the spec module imports the kinds
    from zoo.candidates.spec import CandidateSpec

ADAPTER = "adapter"


class AdapterFolderKind(CandidateKind):
    """Served as ``W0 + dW``: no extra matmuls, the base model's speed."""

    artifact = ADAPTER

    @contextmanager
    def applied(self, spec: CandidateSpec, folder: Path | None, model: nn.Module) -> Iterator[Applied]:
        with folded(model, load_adapter(folder)):
            yield Applied()
