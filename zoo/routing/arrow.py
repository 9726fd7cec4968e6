"""Arrow routing (Ostapenko et al., 2024): data-free, each expert is scored by its prototype.

The prototype ``v_e`` of a module is the top right singular vector of the expert's update ``B_e A_e``
(``zoo.arrow``), the input direction the expert changes most. A singular vector's sign is arbitrary, so
a token ``h`` scores ``|<h, v_e>| / T``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zoo.adapters.factors import Adapter
from zoo.arrow import library_prototypes
from zoo.routing.vectors import ModuleRouting


@dataclass(frozen=True)
class ArrowConfig:
    """``top_k`` experts kept per token (softmax over the kept); ``temperature`` divides the logits."""

    top_k: int = 3
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


def prepare_arrow_vectors(vectors: torch.Tensor) -> torch.Tensor:
    """Prototypes are used as stored (unit vectors): ``(E, d_in) -> (E, d_in)``."""
    return vectors


def arrow_logits(
    h: torch.Tensor, vectors: torch.Tensor, config: ArrowConfig, sign_free: torch.Tensor | None = None
) -> torch.Tensor:
    """``h: (n, d_in)``, ``vectors: (E, d_in)`` -> logits ``(n, E)`` = ``|<h, v_e>| / T``.

    ``sign_free`` is accepted for a uniform router signature; every Arrow score is sign-free.
    """
    return (h @ vectors.T).abs() / config.temperature


def arrow_routing_vectors(experts: Sequence[Adapter]) -> dict[str, ModuleRouting]:
    """Exact Arrow prototypes of every module of every expert, stacked per module (what the router stores)."""
    return {
        name: ModuleRouting(experts=list(p.experts), vectors=p.vectors.float())
        for name, p in library_prototypes(experts).items()
    }
