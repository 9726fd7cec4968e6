"""RegMean (Jin et al. 2023): the merge that best reproduces every expert's outputs on its own inputs.

For one module, with ``G_i = X_i^T X_i`` the Gram of expert ``i``'s layer inputs (from its training
examples through the base), ``dW* = argmin sum_i ||X_i dW^T - X_i dW_i^T||^2 = (sum_i dW_i G_i)(sum_i G_i)^-1``.
On the factors ``dW_i = B_i A_i`` this stays exactly low-rank:
``dW* = [B_1 | ... | B_n] [A_1 G_1; ...; A_n G_n] (sum G)^-1``, rank ``sum r_i``: per module one ``d_in x d_in``
solve, and per expert only ``A_i G_i`` (``r_i x d_in``) and the running ``sum G`` are kept, so Grams are
read one expert at a time. As in the paper, each Gram's off-diagonal is scaled by ``alpha`` (a ridge
toward its diagonal that keeps the sum well conditioned). Weights scale each expert's term; with every
``G_i`` the identity the result is the weighted average of the updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.adapters.factors import Adapter, LoraFactors
from zoo.merge.registry import MergeData, MergeMethod, register


@dataclass
class RegMeanStats:
    """``a_grams[i][module] = A_i G_i``; ``gram_sum[module] = sum of the G_i`` of the adapters with the module."""

    a_grams: list[dict[str, torch.Tensor]] = field(default_factory=list)
    gram_sum: dict[str, torch.Tensor] = field(default_factory=dict)


def regularised(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha G + (1 - alpha) diag(G)``."""
    return alpha * gram + (1 - alpha) * torch.diag(gram.diagonal())


def prepare(adapters: Sequence[Adapter], data: MergeData | None, options: dict[str, Any]) -> RegMeanStats:
    if data is None:
        raise ValueError("regmean needs the experts' layer inputs: give merge() their data")
    stats = RegMeanStats()
    for i, adapter in enumerate(adapters):
        grams = data.grams(i, list(adapter.modules))
        own = {}
        for name, f in adapter.modules.items():
            g = regularised(grams.pop(name).double(), options["alpha"])
            own[name] = f.A.double() @ g
            stats.gram_sum[name] = stats.gram_sum[name] + g if name in stats.gram_sum else g
        stats.a_grams.append(own)
    return stats


def combine(name: str, idx: list[int], factors: list[LoraFactors], weights: list[float], stats: RegMeanStats,
            options: dict[str, Any]) -> LoraFactors:
    """``[w_1 B_1 | ...] [A_1 G_1; ...] (sum G)^-1`` for one module (``sum G`` is symmetric)."""
    stacked = torch.cat([stats.a_grams[i][name] for i in idx])  # (sum r_i, d_in)
    a = torch.linalg.solve(stats.gram_sum[name], stacked.T).T
    b = torch.cat([f.B.double() * w for f, w in zip(factors, weights, strict=True)], dim=1)
    return LoraFactors(A=a.float().contiguous(), B=b.float().contiguous())


REGMEAN = register(
    MergeMethod(
        name="regmean",
        pretty_name="RegMean",
        reference="Jin et al. 2023, Dataless Knowledge Fusion by Merging Weights of Language Models, arXiv:2212.09849",
        defaults={"alpha": 0.9},
        prepare=prepare,
        combine=combine,
    )
)
