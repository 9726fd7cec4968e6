"""Seeded ``k x k`` sketches of LoRA updates whose inner products estimate the exact ones without bias.

``S = (O_out^T B)(A O_in)`` with Gaussian ``O_out: (d_out, k)``, ``O_in: (d_in, k)``, entries ``N(0, 1/k)``, so
``E[O O^T] = I`` and ``E<S_i, S_j> = <B_i A_i, B_j A_j>``. The projections depend only on
``(seed, module name, shape, k)``: every adapter sketched with the same seed, anywhere, gets the same ones,
so sketches stored in the catalog stay comparable and clustering 10^5 adapters never reopens a weight file.
Cosines computed from sketches are ratios of unbiased estimates: consistent, not exactly unbiased.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from zoo.adapters.factors import Adapter
from zoo.algebra.inner import PairwiseInner, accumulate_pairwise
from zoo.algebra.seeds import stable_seed

DEFAULT_SKETCH_SIZE = 32


def projections(seed: int, module: str, d_out: int, d_in: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(O_out: (d_out, k), O_in: (d_in, k))`` float64 on CPU, entries ``N(0, 1/k)``.

    Drawn in float32 by a CPU generator whatever the compute device, so every machine gets the same ones.
    """
    out = []
    for side, d in (("out", d_out), ("in", d_in)):
        gen = torch.Generator().manual_seed(stable_seed(seed, module, f"{d_out}x{d_in}", k, side))
        out.append(torch.randn(d, k, generator=gen).double() / k**0.5)
    return out[0], out[1]


def sketch_many(
    adapters: Sequence[Adapter],
    k: int = DEFAULT_SKETCH_SIZE,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[dict[str, torch.Tensor]]:
    """Per-module ``(k, k)`` sketches ``(O_out^T B)(A O_in)`` of each adapter, on CPU in ``dtype``.

    Module-major, so each projection is drawn once for all adapters; computed in float64 on ``device`` at
    cost ``O(r k (d_in + d_out))`` per module and adapter.
    """
    result: list[dict[str, torch.Tensor]] = [{} for _ in adapters]
    names = list(dict.fromkeys(name for a in adapters for name in a.modules))
    for name in names:
        owners = [i for i, a in enumerate(adapters) if name in a.modules]
        drawn: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        for i in owners:
            f = adapters[i].modules[name]
            if (f.d_out, f.d_in) not in drawn:
                o_out, o_in = projections(seed, name, f.d_out, f.d_in, k)
                drawn[(f.d_out, f.d_in)] = (o_out.to(device), o_in.to(device))
            o_out, o_in = drawn[(f.d_out, f.d_in)]
            left = o_out.T @ f.B.to(device, torch.float64)  # (k, r)
            right = f.A.to(device, torch.float64) @ o_in  # (r, k)
            result[i][name] = (left @ right).to("cpu", dtype)
    return result


def sketch(
    adapter: Adapter,
    k: int = DEFAULT_SKETCH_SIZE,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Per-module ``(k, k)`` sketches of one adapter (see :func:`sketch_many`)."""
    return sketch_many([adapter], k=k, seed=seed, device=device, dtype=dtype)[0]


def sketch_pairwise_inner(sketches: Sequence[dict[str, torch.Tensor]]) -> PairwiseInner:
    """Estimated adapter-level inner products from sketches (same seed and ``k`` for all)."""

    def gram(name: str, idx: list[int]) -> torch.Tensor:
        flat = torch.stack([sketches[i][name].reshape(-1).to(torch.float64) for i in idx])  # (n, k^2)
        return flat @ flat.T

    return accumulate_pairwise([list(s) for s in sketches], gram)


def sketch_cosine_matrix(sketches: Sequence[dict[str, torch.Tensor]]) -> np.ndarray:
    """``(N, N)`` cosine estimated from sketches, over the modules each pair shares."""
    return sketch_pairwise_inner(sketches).cosine()


def sketch_embedding(sketches: Sequence[dict[str, torch.Tensor]]) -> np.ndarray:
    """``(N, M k^2)`` unit-norm rows (modules in sorted order, zeros where absent): Euclidean geometry for
    clustering very many adapters without an ``N x N`` matrix. Dot products of rows approximate the cosine
    over the *union* of modules."""
    names = sorted({m for s in sketches for m in s})
    sizes = {m: next(s[m].numel() for s in sketches if m in s) for m in names}
    rows = np.zeros((len(sketches), sum(sizes.values())))
    for i, s in enumerate(sketches):
        parts = [s[m].reshape(-1).double().numpy() if m in s else np.zeros(sizes[m]) for m in names]
        row = np.concatenate(parts)
        norm = np.linalg.norm(row)
        rows[i] = row / norm if norm > 0 else row
    return rows
