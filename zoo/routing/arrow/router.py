"""Arrow routing (Ostapenko et al., 2024): data-free, each expert is scored by its prototype.

The prototype ``v_e`` of a module is the top right singular vector of the expert's update ``B_e A_e``
(``zoo.algebra.prototypes``), the input direction the expert changes most. A singular vector's sign is arbitrary, so
a token ``h`` scores ``|<h, v_e>| / T``.

Two data-free variants of the score are settings (``centre``), off by default (the paper's formulation):

* ``"features"``: centre each token over its features, ``|<h - mean(h) 1, v_e>|`` (PHATGOOSE's
  standardisation without the scale). The centring matrix is symmetric and idempotent, so this equals
  ``|<h, v_e - mean(v_e) 1>|``: it is applied to the prototypes once, at load time.
* ``"prototypes"``: project out the direction the module's prototypes share, the top right singular
  vector ``u`` of the stacked ``(E, d_in)`` prototypes (sign-free: it does not depend on the prototypes'
  arbitrary signs), and renormalise: ``v'_e = unit(v_e - <v_e, u> u)``. Again ``<P h, v_e> = <h, P v_e>``,
  so it costs nothing per token. Modules with fewer than 3 experts are left as they are: with two, both
  residuals lie on one line and would always tie.

``normalise`` divides a token's scores by ``||h||``: the ranking, hence the experts chosen, is unchanged,
only the softmax weights over the kept experts move (a per-token temperature).

On the demo zoo none of these changed routing accuracy (docs/results.md): the prototypes there capture
about as much of the tokens' energy as random directions, so there is no shared component to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from zoo.adapters.factors import Adapter
from zoo.algebra.prototypes import library_prototypes
from zoo.routing.router import FitData, Fitted, Router
from zoo.routing.vectors import ModuleRouting

Centre = Literal["none", "features", "prototypes"]
CENTRES: tuple[str, ...] = ("none", "features", "prototypes")
# How a member's vectors were made: its Arrow prototype (the top right singular vector of its update).
PROTOTYPE = "arrow-prototype"
# Below this many experts a module's prototypes are not centred (``"prototypes"``): see the module docstring.
MIN_EXPERTS_TO_CENTRE = 3


@dataclass(frozen=True)
class ArrowConfig:
    """``top_k`` experts kept per token (softmax over the kept); ``temperature`` divides the logits;
    ``centre`` and ``normalise``: the data-free variants of the module docstring (defaults: the paper's)."""

    top_k: int = 3
    temperature: float = 1.0
    centre: Centre = "none"
    normalise: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.centre not in CENTRES:
            raise ValueError(f"centre must be one of {CENTRES}, got {self.centre!r}")


def centre_prototypes(vectors: torch.Tensor, centre: str) -> torch.Tensor:
    """``(E, d_in) -> (E, d_in)``: the prototypes as the chosen centring scores them (see the module docstring)."""
    if centre == "none":
        return vectors
    if centre == "features":
        return vectors - vectors.mean(dim=-1, keepdim=True)
    if centre == "prototypes":
        if vectors.shape[0] < MIN_EXPERTS_TO_CENTRE:
            return vectors
        shared = torch.linalg.svd(vectors.double(), full_matrices=False).Vh[0]
        residual = vectors.double() - torch.outer(vectors.double() @ shared, shared)
        norm = residual.norm(dim=-1, keepdim=True)
        return torch.where(norm > 1e-12, residual / norm.clamp_min(1e-12), residual).to(vectors.dtype)
    raise ValueError(f"centre must be one of {CENTRES}, got {centre!r}")


class ArrowScorer(nn.Module):
    """``h: (n, d_in) -> (n, E)``: ``|<h, v_e>| / T`` over the prototypes as ``config`` prepares them (once)."""

    def __init__(self, vectors: torch.Tensor, config: ArrowConfig) -> None:
        super().__init__()
        self.register_buffer("vectors", centre_prototypes(vectors, config.centre).contiguous(), persistent=False)
        self.normalise, self.temperature = config.normalise, config.temperature

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = (h @ self.vectors.float().T).abs()
        if self.normalise:
            logits = logits / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return logits if self.temperature == 1.0 else logits / self.temperature


def arrow_routing_vectors(experts: Sequence[Adapter]) -> dict[str, ModuleRouting]:
    """Exact Arrow prototypes of every module of every expert, stacked per module (what the router stores)."""
    return {
        name: ModuleRouting(experts=list(p.experts), vectors=p.vectors.float())
        for name, p in library_prototypes(experts).items()
    }


class ArrowRouter(Router):
    """Data-free: fitting is the prototypes' exact SVD; every member is routed by its prototype."""

    name = "arrow"
    reference = "Ostapenko et al. 2024, Towards Modular LLMs by Building and Reusing a Library of LoRAs"
    config_class = ArrowConfig

    def fit(self, experts: Sequence[Adapter], config: ArrowConfig, fit_config: None, data: FitData | None) -> Fitted:
        return Fitted(arrow_routing_vectors(experts), [PROTOTYPE] * len(experts))

    def scorer(self, vectors: torch.Tensor, routed_by: Sequence[str], config: ArrowConfig) -> nn.Module:
        return ArrowScorer(vectors, config)
