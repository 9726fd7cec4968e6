"""Routing vectors of one module across a library: what a router scores tokens against."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModuleRouting:
    """``experts`` are library indices (ascending) of the experts adapting the module; ``vectors: (E, d_in)``."""

    experts: list[int]
    vectors: torch.Tensor

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.experts):
            raise ValueError(f"expected vectors of shape ({len(self.experts)}, d_in), got {tuple(self.vectors.shape)}")
        if list(self.experts) != sorted(set(self.experts)):
            raise ValueError(f"expert indices must be ascending and unique, got {self.experts}")
