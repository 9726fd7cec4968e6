"""Dense update -> LoRA factors of a target rank (the last step of an element-wise merge)."""

from __future__ import annotations

from typing import Literal

import torch

from zoo.adapters.factors import LoraFactors

# Randomised SVD settings (Halko et al. 2011): oversampling and power iterations for slowly decaying spectra.
OVERSAMPLE = 16
POWER_ITERATIONS = 4


def dense_to_factors(
    delta: torch.Tensor, rank: int, svd: Literal["randomized", "exact"] = "randomized", seed: int = 0
) -> LoraFactors:
    """Best (``exact``) or near-best (``randomized``) rank-``rank`` factors of ``delta: (d_out, d_in)``.

    ``randomized`` costs ``O(d_out d_in rank)`` instead of the ``O(d^3)`` of a dense SVD; it is exact
    whenever ``rank + OVERSAMPLE >= min(d_out, d_in)``. Singular values are split evenly between A and B.
    """
    rank = max(1, min(rank, *delta.shape))
    if svd == "exact" or rank + OVERSAMPLE >= min(delta.shape):
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    else:
        with torch.random.fork_rng(devices=[delta.device] if delta.device.type == "cuda" else []):
            torch.manual_seed(seed)
            u, s, v = torch.svd_lowrank(delta, q=rank + OVERSAMPLE, niter=POWER_ITERATIONS)
        u, s, vh = u[:, :rank], s[:rank], v[:, :rank].T
    root = s.sqrt()
    return LoraFactors(A=(root[:, None] * vh).contiguous(), B=(u * root).contiguous())
