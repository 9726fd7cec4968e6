"""Grouped LoRA dispatch: each token is multiplied only by the experts chosen for it.

The experts of one module are stored padded to a common rank ``r_pad`` (the largest rank, rounded up to a
multiple of 8 for the grouped GEMM's 16-byte alignment): ``a_pad: (E, r_pad, d_in)`` and
``bt_pad: (E, r_pad, d_out)`` (``B`` transposed, scale folded in), expert ``e``'s factors in rows
``:ranks[e]`` and zeros below, so experts of different ranks share one layout and the zero rows add nothing.

Three interchangeable ways to compute ``delta`` (the same maths; tests hold each to a pairwise reference):

* ``"grouped"`` (the default wherever ``torch._grouped_mm`` takes the shapes): pairs sorted by expert, as
  mixture-of-experts layers do; the per-expert group boundaries stay on the device (``searchsorted``) and
  each side is one grouped GEMM over all experts, then one ``index_add_`` scatters the weighted results
  back. Only the chosen experts are computed (``O(n k (d_in + d_out) r)``). On CUDA sm90+ in bfloat16 it
  is CUTLASS's grouped kernel: a fixed number of ops per call (about 10) whatever E is, no host sync. On CPU
  ``_grouped_mm`` is a loop of matmuls into one output (float32/bfloat16/float16; row strides must be
  multiples of 16 bytes), measured mostly faster than ``"loop"`` at the bench's shapes (up to 13%; up
  to 6% slower in a few cells: docs/benchmarks.md, "Routing").
* ``"loop"`` (CPU fallback): the same sorted pairs; each active expert gathers just its tokens, runs two
  small matmuls and scatters its weighted result back with ``index_add_``. One host sync per call (the
  per-expert counts) and about five kernels per active expert, which leaves a GPU idle most of the time.
* ``"dense"`` (CUDA fallback, where the grouped kernel does not apply: other dtypes, pre-Hopper GPUs):
  every token through every expert's rank space, ``(h A_all^T * W) B_all`` with ``W`` holding each token's
  routing weight on its chosen experts' rank columns and zeros elsewhere: two plain matmuls, no host sync,
  but ``O(n E r (d_in + d_out))`` (E/k times the work; still no ``(n, E, d_out)`` tensor), and an unchosen
  expert's non-finite factors would leak in through ``0 * inf``.

``StackedLora.path`` picks one (``"auto"``: by device, dtype and shapes, as above); set it on the class or
an instance to force one.

A per-example router's choice needs none of them: every token of an example goes through the same k
experts, so :meth:`StackedLora.example_delta` stacks each example's chosen factors along the rank (one
LoRA of rank ``k r_pad`` per example: its experts' merged update) and runs two batched matmuls, with no
pairs to sort or scatter. A decision held through decoding keeps those factors, or, where that copy would
outgrow the stacked factors, pairs prepared once (:meth:`StackedLora.prepare`) to reuse at every step.
Where every example mixes all the experts (a confidence fallback's uniform mixture),
:meth:`StackedLora.mixture_delta` uses the stack as it is, with each example's weights over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from zoo.adapters.factors import LoraFactors

PATHS = ("auto", "loop", "grouped", "dense")
# Rank padding: 8 elements = 16 bytes in bfloat16, the grouped GEMM's alignment for the rank-sized strides.
RANK_MULTIPLE = 8


def grouped_mm_kind(device: torch.device, dtype: torch.dtype, d_in: int, d_out: int) -> str | None:
    """How ``torch._grouped_mm`` would run these factors: ``"kernel"`` (CUDA sm90+, bfloat16: CUTLASS, no host
    sync), ``"fallback"`` (CPU, or CUDA otherwise: a per-group loop, on CUDA with a host sync), or ``None``
    where it refuses them (dtype, 16-byte row alignment, no ``_grouped_mm`` in this torch)."""
    if not hasattr(torch, "_grouped_mm") or dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return None
    alignment = 16 // dtype.itemsize
    if d_in % alignment or d_out % alignment:
        return None
    if device.type == "cuda" and not torch.version.hip and dtype == torch.bfloat16:
        return "kernel" if torch.cuda.get_device_capability(device)[0] >= 9 else "fallback"
    return "fallback" if device.type in ("cpu", "cuda") else None


@dataclass(frozen=True)
class Pairs:
    """(token, chosen expert) pairs of ``n`` tokens made ready for one dispatch path: sorted by expert, the
    tokens (``token``) and weights (``weight: (m, 1)``) in that order, with the group ends (``ends``, grouped)
    or the per-expert counts (``counts``, loop); the dense path needs only the ``(n, E)`` weights ``mix``.
    ``a``, ``bt``: the used experts' factors when compacted (grouped), else ``None`` (the stacked ones)."""

    path: str
    n: int
    token: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    ends: torch.Tensor | None = None
    counts: list[int] | None = None
    mix: torch.Tensor | None = None
    a: torch.Tensor | None = None
    bt: torch.Tensor | None = None


class StackedLora(nn.Module):
    """The LoRA factors of one module's experts, padded to one rank (buffers, so ``.to()`` moves them).

    ``a_pad: (E, r_pad, d_in)``, ``bt_pad: (E, r_pad, d_out)``; expert ``e`` owns rows ``:ranks[e]``.
    """

    path: str = "auto"

    def __init__(self, factors: Sequence[LoraFactors], device: torch.device | str, dtype: torch.dtype) -> None:
        super().__init__()
        if not factors:
            raise ValueError("a routed module needs at least one expert")
        d_in, d_out = factors[0].d_in, factors[0].d_out
        for f in factors:
            if (f.d_in, f.d_out) != (d_in, d_out):
                raise ValueError(f"experts disagree on the module shape: {(f.d_out, f.d_in)} vs {(d_out, d_in)}")
        self.ranks = [f.rank for f in factors]
        r_pad = -(-max(self.ranks) // RANK_MULTIPLE) * RANK_MULTIPLE
        a_pad = torch.zeros(len(factors), r_pad, d_in, dtype=dtype)
        bt_pad = torch.zeros(len(factors), r_pad, d_out, dtype=dtype)
        for e, f in enumerate(factors):
            a_pad[e, :f.rank] = f.A.to(dtype)
            bt_pad[e, :f.rank] = f.B.T.to(dtype)
        self.register_buffer("a_pad", a_pad.to(device), persistent=False)
        self.register_buffer("bt_pad", bt_pad.to(device), persistent=False)
        # Group ends are searched for at 1..E (the grouped path): built once, not per call.
        self.register_buffer("bounds", torch.arange(1, len(factors) + 1, device=device), persistent=False)
        self._auto: tuple[torch.device, torch.dtype, str] | None = None

    @property
    def num_experts(self) -> int:
        return len(self.ranks)

    @property
    def d_out(self) -> int:
        return self.bt_pad.shape[2]

    def resolved_path(self) -> str:
        """The path ``delta`` takes for the factors' current device and dtype."""
        if self.path not in PATHS:
            raise ValueError(f"unknown dispatch path {self.path!r}; known: {PATHS}")
        if self.path != "auto":
            return self.path
        device, dtype = self.a_pad.device, self.a_pad.dtype
        if self._auto is None or self._auto[:2] != (device, dtype):  # cached: it is asked on every call
            kind = grouped_mm_kind(device, dtype, self.a_pad.shape[2], self.d_out)
            if device.type == "cuda":
                path = "grouped" if kind == "kernel" else "dense"
            else:
                path = "grouped" if kind == "fallback" else "loop"
            self._auto = (device, dtype, path)
        return self._auto[2]

    def delta(self, h: torch.Tensor, token: torch.Tensor | int, expert: torch.Tensor, weight: torch.Tensor,
              out: torch.Tensor | None = None) -> torch.Tensor:
        """``sum over pairs p: weight_p * B_{expert_p} A_{expert_p} h[token_p]``.

        ``h: (n, d_in)``; ``expert``, ``weight``: ``(m,)`` one entry per (token, chosen expert) pair;
        ``token``: ``(m,)`` each pair's token, or an int ``k`` when the pairs are the rows of an ``(n, k)``
        choice flattened (pair ``p`` is token ``p // k``: no index tensor to build). Returns ``(n, d_out)`` in
        the factors' dtype, added into ``out`` (in place, and returned) when given; differentiable in ``h``
        and ``weight``. Accumulating into ``out`` saves a zero fill and an addition per call, which matters
        where every kernel launch costs host time (GPUs).
        """
        return self.apply(h, self.prepare(h.shape[0], token, expert, weight), out)

    def prepare(self, n: int, token: torch.Tensor | int, expert: torch.Tensor, weight: torch.Tensor,
                compact: bool = False) -> Pairs:
        """The pairs of :meth:`delta` for ``n`` tokens, sorted and bounded for the current path: a per-example
        decision holds the same pairs through every decode step, so it prepares them once.

        ``compact`` (grouped path): copy out the factors of just the experts the pairs use, so that each call
        runs over those groups only (on CPU the grouped GEMM visits every group, empty ones too). It costs a
        host sync and at most one more copy of the factors, worth it only for pairs kept over many calls."""
        path = self.resolved_path()
        weight = weight.to(self.a_pad.dtype)
        if path == "dense":
            num = self.num_experts
            if isinstance(token, int):  # (n, E) routing weights, scattered from each token's row of choices
                mix = weight.new_zeros(n, num).scatter_add_(1, expert.view(n, token), weight.view(n, token))
            else:
                mix = weight.new_zeros(n * num).index_add(0, token * num + expert, weight)
            return Pairs(path, n, mix=mix.view(n, num))
        a = bt = None
        bounds = self.bounds
        if compact and path == "grouped":
            used, expert = torch.unique(expert, return_inverse=True)
            if len(used) < self.num_experts:
                a, bt, bounds = self.a_pad[used], self.bt_pad[used], bounds[:len(used)]
        expert_sorted, order = torch.sort(expert, stable=True)
        token_sorted = order // token if isinstance(token, int) else token[order]
        if path == "loop":
            counts = torch.bincount(expert, minlength=self.num_experts).tolist()  # the host sync
            return Pairs(path, n, token_sorted, weight[order, None], counts=counts)
        # Group ends (cumulative counts) without leaving the device: searchsorted over the sorted experts.
        ends = torch.searchsorted(expert_sorted, bounds.to(expert.dtype), out_int32=True)
        return Pairs(path, n, token_sorted, weight[order, None], ends=ends, a=a, bt=bt)

    def apply(self, h: torch.Tensor, pairs: Pairs, out: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`delta` of prepared pairs (``h: (n, d_in)`` with the ``n`` they were prepared for)."""
        if h.shape[0] != pairs.n:
            raise ValueError(f"pairs prepared for {pairs.n} tokens, applied to {h.shape[0]}")
        h = h.to(self.a_pad.dtype)
        if out is None:
            out = h.new_zeros(h.shape[0], self.d_out)
        if pairs.path == "loop":
            return self._loop(h, pairs, out)
        if pairs.path == "grouped":
            return self._grouped(h, pairs, out)
        return self._dense(h, pairs, out)

    def example_delta(self, h: torch.Tensor, expert: torch.Tensor, weight: torch.Tensor,
                      out: torch.Tensor | None = None) -> torch.Tensor:
        """``h: (B, T, d_in)``; every token of example ``b`` through experts ``expert[b]: (k,)`` weighted by
        ``weight[b]``: ``sum_j weight[b, j] B_{e_j} A_{e_j} h[b, t]``, as ``(B, T, d_out)`` in the factors'
        dtype, added into ``out`` when given. Differentiable in ``h`` and ``weight``; an expert with weight 0
        adds nothing unless its factors are non-finite (as on the dense path)."""
        return self.apply_example(h, self.example_factors(expert, weight), out)

    def example_factors(self, expert: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's chosen experts stacked along the rank, one LoRA of rank ``k r_pad`` per example (its
        experts' merged update): ``A^T: (B, d_in, k r_pad)`` and the weighted ``B^T: (B, k r_pad, d_out)``."""
        at = self.a_pad[expert].flatten(1, 2).transpose(1, 2)
        bt = (self.bt_pad[expert] * weight.to(self.a_pad.dtype)[:, :, None, None]).flatten(1, 2)
        return at, bt

    def apply_example(self, h: torch.Tensor, factors: tuple[torch.Tensor, torch.Tensor],
                      out: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`example_delta` with the examples' factors already gathered (two batched matmuls)."""
        at, bt = factors
        z = torch.bmm(h.to(self.a_pad.dtype), at)
        return torch.bmm(z, bt) if out is None else out.baddbmm_(z, bt)

    def mixture_delta(self, h: torch.Tensor, mix: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``h: (B, T, d_in)``; every token of example ``b`` through every expert, weighted by ``mix[b]: (E,)``
        (zeros for the experts it did not choose), as ``(B, T, d_out)`` added into ``out`` when given: the dense
        path with each example's weights for its tokens. The stacked factors as they are, no copy: the way when
        each example chooses about all E experts (a confidence fallback's uniform mixture), where gathering them
        per example would copy the stack B times."""
        batch, tokens, d_in = h.shape
        pairs = Pairs("dense", batch * tokens, mix=mix.to(self.a_pad.dtype).repeat_interleave(tokens, dim=0))
        flat = None if out is None else out.view(batch * tokens, -1)
        return self.apply(h.reshape(batch * tokens, d_in), pairs, flat).view(batch, tokens, -1)

    def _loop(self, h: torch.Tensor, pairs: Pairs, out: torch.Tensor) -> torch.Tensor:
        start = 0
        for e, count in enumerate(pairs.counts):
            if count == 0:
                continue
            r = self.ranks[e]
            tokens = pairs.token[start:start + count]
            # The weight is applied in rank space (count x r) and results are scattered per expert, so no
            # (m, d) intermediate is ever allocated: on CPU those allocations cost more than the matmuls.
            z = (h.index_select(0, tokens) @ self.a_pad[e, :r].T) * pairs.weight[start:start + count]
            out.index_add_(0, tokens, (z @ self.bt_pad[e, :r]).to(out.dtype))  # (autocast may lower it)
            start += count
        return out

    def _grouped(self, h: torch.Tensor, pairs: Pairs, out: torch.Tensor) -> torch.Tensor:
        a, bt = (self.a_pad, self.bt_pad) if pairs.a is None else (pairs.a, pairs.bt)
        z = torch._grouped_mm(h.index_select(0, pairs.token), a.transpose(1, 2), offs=pairs.ends)
        y = torch._grouped_mm(z * pairs.weight, bt, offs=pairs.ends)  # (m, d_out): the chosen experts' outputs
        return out.index_add_(0, pairs.token, y.to(out.dtype))

    def _dense(self, h: torch.Tensor, pairs: Pairs, out: torch.Tensor) -> torch.Tensor:
        n, (num, r_pad, d_in) = h.shape[0], self.a_pad.shape
        z = (h @ self.a_pad.reshape(num * r_pad, d_in).T).view(n, num, r_pad) * pairs.mix[:, :, None]
        return out.addmm_(z.view(n, num * r_pad), self.bt_pad.reshape(num * r_pad, self.d_out))
