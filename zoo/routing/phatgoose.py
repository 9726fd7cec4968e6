"""PHATGOOSE routing (Muqeeth et al., 2024): post-hoc trained gates, one vector per expert and module.

Each gate ``g_e`` was trained (``zoo.routing.phatgoose_train``) so that the module computes
``W0 h + sigmoid(<g_e, h>) B_e A_e h`` on the expert's own data. At inference both the token and the
gates are standardised over features (zero mean, unit variance), which puts gates trained separately on
one scale, and a token scores ``<h_hat, g_hat_e> / sqrt(d)``.

Experts without training data carry their Arrow prototype instead of a gate (``sign_free``); a
prototype's sign is arbitrary, so they score ``|<h_hat, v_hat_e>| / sqrt(d)``, the same standardised
similarity without the sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_EPS = 1e-6


@dataclass(frozen=True)
class PhatgooseConfig:
    """``top_k`` experts kept per token (softmax over the kept); the paper uses 2."""

    top_k: int = 2

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")


def standardise(x: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit (biased) variance over the last dimension: ``(..., d) -> (..., d)``.

    That is layer norm without its affine part: one fused kernel per token batch instead of five."""
    return F.layer_norm(x, x.shape[-1:], eps=_EPS)


def prepare_phatgoose_vectors(vectors: torch.Tensor, config: PhatgooseConfig | None = None) -> torch.Tensor:
    """The gates as scored, once at load time: standardised, with the ``1 / sqrt(d)`` folded in
    (``(E, d_in) -> (E, d_in)``; ``config`` is not needed)."""
    return standardise(vectors) / math.sqrt(vectors.shape[-1])


def phatgoose_logits(
    h: torch.Tensor, vectors: torch.Tensor, config: PhatgooseConfig, sign_free: torch.Tensor | None = None
) -> torch.Tensor:
    """``h: (n, d_in)``, prepared ``vectors: (E, d_in)`` -> logits ``(n, E)`` = ``<h_hat, g_hat_e> / sqrt(d)``.

    ``sign_free: (E,)`` bool marks Arrow-prototype fallbacks, whose score is taken in absolute value.
    """
    logits = standardise(h) @ vectors.T
    if sign_free is not None:
        logits = torch.where(sign_free, logits.abs(), logits)
    return logits
