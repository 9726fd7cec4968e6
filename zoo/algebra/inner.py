"""Exact Frobenius inner products of LoRA updates, computed on the factors.

``<B_i A_i, B_j A_j>_F = sum((B_i^T B_j) * (A_i A_j^T))`` costs ``O(r_i r_j (d_in + d_out))`` and is invariant
to the gauge ``A -> R A, B -> B R^-1``, unlike any comparison of the raw A/B entries. For N adapters one
module's Gram matrix is a *block* Gram: concatenate the factors of all adapters and do one matmul for
``A A^T`` and one for ``B^T B``; blocks are summed per adapter pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from zoo.adapters.factors import Adapter, LoraFactors

# Largest concatenated rank handled in one matmul; bigger zoos are processed in tiles of adapters.
DEFAULT_TILE_RANK = 4096


def module_inner(f: LoraFactors, g: LoraFactors, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``<dW_f, dW_g>_F`` of one module (a 0-d tensor)."""
    a_f, b_f, a_g, b_g = (t.to(dtype) for t in (f.A, f.B, g.A, g.B))
    return ((b_f.T @ b_g) * (a_f @ a_g.T)).sum()


def module_gram(
    factors: Sequence[LoraFactors],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    tile_rank: int = DEFAULT_TILE_RANK,
) -> torch.Tensor:
    """``(n, n)`` Gram matrix ``G[i, j] = <dW_i, dW_j>_F`` of one module across ``n`` adapters.

    All factors must share ``(d_out, d_in)``; ranks may differ. Tiles of adapters keep the ``(R, R)``
    intermediate below ``tile_rank^2`` entries. Returned on ``device`` in ``dtype``.
    """
    tiles = _tiles([f.rank for f in factors], tile_rank)
    gram = torch.zeros(len(factors), len(factors), device=device, dtype=dtype)
    packed = [_pack(factors[lo:hi], device, dtype) for lo, hi in tiles]
    for t, (lo, hi) in enumerate(tiles):
        a_i, b_i, seg_i = packed[t]
        for u in range(t, len(tiles)):
            a_j, b_j, seg_j = packed[u]
            block = seg_i.T @ ((a_i @ a_j.T) * (b_i.T @ b_j)) @ seg_j  # (n_t, n_u)
            lo_u, hi_u = tiles[u]
            gram[lo:hi, lo_u:hi_u] = block
            gram[lo_u:hi_u, lo:hi] = block.T
    return gram


def _tiles(ranks: list[int], tile_rank: int) -> list[tuple[int, int]]:
    """Consecutive index ranges whose summed rank stays within ``tile_rank`` (at least one adapter each)."""
    tiles, start, total = [], 0, 0
    for i, r in enumerate(ranks):
        if total and total + r > tile_rank:
            tiles.append((start, i))
            start, total = i, 0
        total += r
    tiles.append((start, len(ranks)))
    return tiles


def _pack(
    factors: Sequence[LoraFactors], device: str | torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenated ``A: (R, d_in)``, ``B: (d_out, R)`` and the one-hot segment matrix ``(R, n)``."""
    a = torch.cat([f.A for f in factors]).to(device=device, dtype=dtype)
    b = torch.cat([f.B for f in factors], dim=1).to(device=device, dtype=dtype)
    owner = torch.repeat_interleave(torch.arange(len(factors)), torch.tensor([f.rank for f in factors]))
    seg = torch.nn.functional.one_hot(owner, len(factors)).to(device=device, dtype=dtype)
    return a, b, seg


@dataclass(frozen=True)
class PairwiseInner:
    """Adapter-level inner products, restricted per pair to the modules both adapters have.

    ``inner[i, j] = sum_{m in M_i & M_j} <dW_i^m, dW_j^m>``; ``shared_sq_norm[i, j]`` is ``||dW_i||^2`` over
    the same module set, so the cosine of a pair never counts modules the other adapter lacks.
    Both ``(N, N)`` float64 on CPU.
    """

    inner: torch.Tensor
    shared_sq_norm: torch.Tensor

    def cosine(self) -> np.ndarray:
        """``(N, N)`` cosine similarities; 0 where a pair shares no non-zero module."""
        denom = (self.shared_sq_norm * self.shared_sq_norm.T).sqrt()
        cos = torch.where(denom > 0, self.inner / denom.clamp_min(1e-300), torch.zeros_like(denom))
        return cos.clamp(-1.0, 1.0).numpy()


def accumulate_pairwise(
    module_sets: Sequence[Sequence[str]], module_gram_fn: Callable[[str, list[int]], torch.Tensor]
) -> PairwiseInner:
    """Sum per-module Gram matrices into adapter-level ones (shared by exact and sketched similarity).

    ``module_sets[i]`` lists the modules of item ``i``; ``module_gram_fn(name, idx)`` returns the
    ``(len(idx), len(idx))`` Gram of module ``name`` over the items ``idx``.
    """
    n = len(module_sets)
    owners: dict[str, list[int]] = {}
    for i, names in enumerate(module_sets):
        for name in names:
            owners.setdefault(name, []).append(i)
    inner = torch.zeros(n, n, dtype=torch.float64)
    presence = torch.zeros(len(owners), n, dtype=torch.float64)
    sq_norms = torch.zeros(len(owners), n, dtype=torch.float64)
    for m, (name, idx) in enumerate(sorted(owners.items())):
        gram = module_gram_fn(name, idx).to("cpu", torch.float64)
        index = torch.tensor(idx)
        inner[index[:, None], index[None, :]] += gram
        presence[m, index] = 1.0
        sq_norms[m, index] = gram.diagonal()
    return PairwiseInner(inner=inner, shared_sq_norm=sq_norms.T @ presence)


def pairwise_inner(
    adapters: Sequence[Adapter],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    modules: Sequence[str] | None = None,
) -> PairwiseInner:
    """Exact adapter-level inner products over the modules each pair shares (optionally only ``modules``)."""
    keep = set(modules) if modules is not None else None
    module_sets = [[m for m in a.modules if keep is None or m in keep] for a in adapters]

    def gram(name: str, idx: list[int]) -> torch.Tensor:
        factors = [adapters[i].modules[name] for i in idx]
        shapes = {(f.d_out, f.d_in) for f in factors}
        if len(shapes) > 1:
            raise ValueError(f"module {name} has different shapes across adapters: {sorted(shapes)}")
        return module_gram(factors, device=device, dtype=dtype)

    return accumulate_pairwise(module_sets, gram)


def cosine_matrix(
    adapters: Sequence[Adapter],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    modules: Sequence[str] | None = None,
) -> np.ndarray:
    """``(N, N)`` exact cosine similarity of the adapters' updates, over the modules each pair shares."""
    return pairwise_inner(adapters, device=device, dtype=dtype, modules=modules).cosine()


def inner_product(a: Adapter, b: Adapter) -> float:
    """``sum_m <dW_a^m, dW_b^m>`` over shared modules."""
    return float(sum(module_inner(a.modules[m], b.modules[m]) for m in a.modules if m in b.modules))


def frobenius_norm(adapter: Adapter) -> float:
    """``sqrt(sum_m ||dW^m||_F^2)`` of the whole adapter."""
    return inner_product(adapter, adapter) ** 0.5


def module_cosines(a: Adapter, b: Adapter) -> dict[str, float]:
    """Per shared module cosine of the two updates (0 where either is zero): where two adapters agree."""
    out = {}
    for m in a.modules:
        if m in b.modules:
            fa, fb = a.modules[m], b.modules[m]
            denom = float(module_inner(fa, fa) * module_inner(fb, fb)) ** 0.5
            out[m] = float(module_inner(fa, fb)) / denom if denom > 0 else 0.0
    return out
