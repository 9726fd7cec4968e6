"""Grouped LoRA dispatch: each token is multiplied only by the experts chosen for it.

The experts of one module are stored concatenated (``A_cat: (R, d_in)``, ``B_cat^T: (R, d_out)`` with
``R = sum_e r_e``), so experts of different ranks need no padding and each expert is a contiguous slice.
Token/expert pairs are sorted by expert, as mixture-of-experts layers do; each expert then gathers just its
tokens, runs two small matmuls and scatters its weighted result back with ``index_add_``. Cost is
``O(n k (d_in + d_out) r)``, never ``O(n E ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.adapters.factors import LoraFactors


class StackedLora(nn.Module):
    """The LoRA factors of one module's experts, concatenated along the rank (buffers, so ``.to()`` moves them).

    ``a_cat: (R, d_in)``, ``bt_cat: (R, d_out)`` (``B`` transposed, scale folded in); expert ``e`` owns rows
    ``offsets[e]:offsets[e + 1]``.
    """

    def __init__(self, factors: Sequence[LoraFactors], device: torch.device | str, dtype: torch.dtype) -> None:
        super().__init__()
        if not factors:
            raise ValueError("a routed module needs at least one expert")
        d_in, d_out = factors[0].d_in, factors[0].d_out
        for f in factors:
            if (f.d_in, f.d_out) != (d_in, d_out):
                raise ValueError(f"experts disagree on the module shape: {(f.d_out, f.d_in)} vs {(d_out, d_in)}")
        self.offsets = [0]
        for f in factors:
            self.offsets.append(self.offsets[-1] + f.rank)
        a_cat = torch.cat([f.A for f in factors]).to(device=device, dtype=dtype)
        bt_cat = torch.cat([f.B.T for f in factors]).to(device=device, dtype=dtype)
        self.register_buffer("a_cat", a_cat.contiguous(), persistent=False)
        self.register_buffer("bt_cat", bt_cat.contiguous(), persistent=False)

    @property
    def num_experts(self) -> int:
        return len(self.offsets) - 1

    @property
    def d_out(self) -> int:
        return self.bt_cat.shape[1]

    def delta(self, h: torch.Tensor, token: torch.Tensor, expert: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``sum over pairs p: weight_p * B_{expert_p} A_{expert_p} h[token_p]``.

        ``h: (n, d_in)``; ``token``, ``expert``, ``weight``: ``(m,)`` one entry per (token, chosen expert)
        pair. Returns ``(n, d_out)`` in the factors' dtype; differentiable in ``h`` and ``weight``.
        """
        h = h.to(self.a_cat.dtype)
        order = torch.argsort(expert, stable=True)
        counts = torch.bincount(expert, minlength=self.num_experts).tolist()
        token_sorted = token[order]
        weight_sorted = weight[order, None].to(h.dtype)
        out = h.new_zeros(h.shape[0], self.d_out)
        start = 0
        for e, count in enumerate(counts):
            if count == 0:
                continue
            rows = slice(self.offsets[e], self.offsets[e + 1])
            tokens = token_sorted[start:start + count]
            # The weight is applied in rank space (count x r) and results are scattered per expert, so no
            # (m, d) intermediate is ever allocated: on CPU those allocations cost more than the matmuls.
            z = (h.index_select(0, tokens) @ self.a_cat[rows].T) * weight_sorted[start:start + count]
            out.index_add_(0, tokens, z @ self.bt_cat[rows])
            start += count
        return out
