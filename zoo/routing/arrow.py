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

from zoo.adapters.factors import Adapter
from zoo.algebra.prototypes import library_prototypes
from zoo.routing.vectors import ModuleRouting

Centre = Literal["none", "features", "prototypes"]
CENTRES: tuple[str, ...] = ("none", "features", "prototypes")
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


def prepare_arrow_vectors(vectors: torch.Tensor, config: ArrowConfig | None = None) -> torch.Tensor:
    """Prototypes as scored: ``(E, d_in) -> (E, d_in)``, centred once at load time when ``config`` says so."""
    return centre_prototypes(vectors, config.centre if config is not None else "none")


def arrow_logits(
    h: torch.Tensor, vectors: torch.Tensor, config: ArrowConfig, sign_free: torch.Tensor | None = None
) -> torch.Tensor:
    """``h: (n, d_in)``, prepared ``vectors: (E, d_in)`` -> logits ``(n, E)`` = ``|<h, v_e>| / T``
    (divided by ``||h||`` with ``normalise``).

    ``sign_free`` is accepted for a uniform router signature; every Arrow score is sign-free.
    """
    logits = (h @ vectors.T).abs()
    if config.normalise:
        logits = logits / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return logits if config.temperature == 1.0 else logits / config.temperature


def arrow_routing_vectors(experts: Sequence[Adapter]) -> dict[str, ModuleRouting]:
    """Exact Arrow prototypes of every module of every expert, stacked per module (what the router stores)."""
    return {
        name: ModuleRouting(experts=list(p.experts), vectors=p.vectors.float())
        for name, p in library_prototypes(experts).items()
    }
