"""Arrow prototypes: the exact top right singular vector of each module's ``dW = B @ A``.

Arrow routes a token ``h`` by ``|<h, v_e>|``, so ``v_e`` must be the dominant input direction of expert
``e``'s update. With thin QR ``A^T = Q_a R_a`` and ``B = Q_b R_b`` the update is ``Q_b (R_b R_a^T) Q_a^T``;
the SVD of the ``r x r`` core gives ``v = Q_a V[:, 0]`` exactly in ``O((d_in + d_out) r^2)``, where PEFT
runs 15 power iterations (inexact when ``sigma_2 ~ sigma_1``) and a dense SVD costs ``O(d^3)``.

Signs are canonical (largest-magnitude entry positive) so stored prototypes are reproducible. When the
spectrum is near-degenerate (``sigma_2 / sigma_1 -> 1``) the top singular *vector* is ill-conditioned: any
unit vector of the top singular subspace is an equally valid prototype, and two exact methods may return
different ones. ``sigma_ratio`` reports this so callers can treat such prototypes as weak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zoo.adapters.factors import Adapter, LoraFactors, module_owners
from zoo.algebra.svd import factored_svd


@dataclass(frozen=True)
class ArrowPrototype:
    """One module's prototype ``vector: (d_in,)``, its singular value ``sigma_1`` and ``sigma_2 / sigma_1``
    (0 for a rank-1 update; near 1 means a weak, ill-defined direction)."""

    vector: torch.Tensor
    sigma_1: float
    sigma_ratio: float


@dataclass(frozen=True)
class ArrowPrototypes:
    """One module's prototypes across a library: ``experts`` indexes the input adapters that have the
    module; ``vectors: (n, d_in)``, ``sigma_1: (n,)``, ``sigma_ratio: (n,)``."""

    experts: list[int]
    vectors: torch.Tensor
    sigma_1: torch.Tensor
    sigma_ratio: torch.Tensor


def top_right_singular(
    A: torch.Tensor, B: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched exact top right singular vector of ``B @ A`` with canonical sign.

    ``A: (n, r, d_in)``, ``B: (n, d_out, r)`` -> ``v: (n, d_in)``, ``sigma_1: (n,)``, ``sigma_2/sigma_1: (n,)``.
    """
    _, s, vh = factored_svd(A, B, rank=2)
    v = vh[:, 0, :]
    pivot = v.abs().argmax(dim=1, keepdim=True)
    sign = torch.where(v.gather(1, pivot) < 0, -1.0, 1.0).to(v.dtype)
    v = v * sign
    sigma_1 = s[:, 0]
    second = s[:, 1] if s.shape[1] > 1 else torch.zeros_like(sigma_1)
    ratio = torch.where(sigma_1 > 0, second / sigma_1.clamp_min(torch.finfo(s.dtype).tiny), torch.ones_like(sigma_1))
    return v, sigma_1, ratio


def _prototypes(
    factors: Sequence[LoraFactors], device: str | torch.device, dtype: torch.dtype
) -> list[ArrowPrototype]:
    """Prototypes of any list of modules, one batched SVD per group of equal ``(r, d_in, d_out)``."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, f in enumerate(factors):
        groups.setdefault((f.rank, f.d_in, f.d_out), []).append(i)
    result: list[ArrowPrototype | None] = [None] * len(factors)
    for idx in groups.values():
        a = torch.stack([factors[i].A for i in idx]).to(device, dtype)
        b = torch.stack([factors[i].B for i in idx]).to(device, dtype)
        v, s, q = (t.cpu() for t in top_right_singular(a, b))
        for j, i in enumerate(idx):
            result[i] = ArrowPrototype(v[j].float(), float(s[j]), float(q[j]))
    return result


def arrow_prototype_details(
    adapter: Adapter, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
) -> dict[str, ArrowPrototype]:
    """Prototype, ``sigma_1`` and ``sigma_2/sigma_1`` of every module (same-shaped modules batched)."""
    return dict(zip(adapter.modules, _prototypes(list(adapter.modules.values()), device, dtype), strict=True))


def arrow_prototypes(
    adapter: Adapter, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
) -> dict[str, torch.Tensor]:
    """``{module: (d_in,) float32}`` exact Arrow prototypes with canonical sign (computed in ``dtype``)."""
    return {name: p.vector for name, p in arrow_prototype_details(adapter, device, dtype).items()}


def library_prototypes(
    adapters: Sequence[Adapter], device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64
) -> dict[str, ArrowPrototypes]:
    """Prototypes of a library of experts, stacked per module (what an Arrow router stores)."""
    owners = module_owners(adapters)
    result = {}
    for name, experts in owners.items():
        protos = _prototypes([adapters[e].modules[name] for e in experts], device, dtype)
        result[name] = ArrowPrototypes(
            experts=experts,
            vectors=torch.stack([p.vector for p in protos]),
            sigma_1=torch.tensor([p.sigma_1 for p in protos], dtype=torch.float64),
            sigma_ratio=torch.tensor([p.sigma_ratio for p in protos], dtype=torch.float64),
        )
    return result
