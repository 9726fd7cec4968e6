"""``RoutedLinear``: a base linear layer plus top-k routing over the library's LoRA experts that adapt it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from zoo.adapters.factors import LoraFactors
from zoo.routing.dispatch import Pairs, StackedLora
from zoo.routing.recorder import RoutingRecorder
from zoo.routing.router import ExampleDecision


@dataclass
class RoutingState:
    """Shared by a model's routed layers: a per-example router's current decision (``None`` for per-token
    routers), and ``off`` while that router looks at the base model to decide."""

    decision: ExampleDecision | None = None
    off: bool = False


class RoutedLinear(nn.Module):
    """``y = base(x) + sum_{e in topk(x)} w_e B_e A_e x`` with ``w`` the softmax over the kept logits.

    ``base`` is the untouched original module (``nn.Linear`` or GPT-2 ``Conv1D``: LoRA factors are in the
    mathematical layout either way). ``experts: (E,)`` are the library indices of the experts that adapt
    this module, in the order of ``factors``. A per-token router gives ``scorer`` (``h: (n, d_in)`` float32 ->
    logits ``(n, E)``); a per-example router gives none and its decision arrives through ``state``.
    """

    def __init__(self, name: str, base: nn.Module, factors: Sequence[LoraFactors], experts: Sequence[int],
                 scorer: nn.Module | None, top_k: int, recorder: RoutingRecorder, state: RoutingState,
                 library_size: int) -> None:
        super().__init__()
        if len(factors) != len(experts):
            raise ValueError(f"{name}: {len(factors)} experts' factors but {len(experts)} expert indices")
        weight = base.weight
        self.name = name
        self.base = base
        self.lora = StackedLora(factors, weight.device, weight.dtype)
        self.scorer = scorer.to(weight.device) if scorer is not None else None
        self.k = min(top_k, len(experts))
        self.recorder = recorder
        self.state = state
        self.register_buffer("experts", torch.as_tensor(list(experts), dtype=torch.long, device=weight.device),
                             persistent=False)
        # Library index -> this module's expert row, -1 where that expert does not adapt the module.
        local = torch.full((library_size,), -1, dtype=torch.long)
        local[list(experts)] = torch.arange(len(experts))
        self.register_buffer("local", local.to(weight.device), persistent=False)
        self._hold: _Held | None = None

    def route(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per token: ``h: (n, d_in)`` -> local expert indices ``(n, k)`` and their softmax weights ``(n, k)``.

        Scores are computed in float32 even in a half-precision model: they are cheap, and half precision
        would turn close scores into ties.
        """
        kept, chosen = self.scorer(h.float()).topk(self.k, dim=-1)
        return chosen, kept.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.state.off:
            return out
        if self.state.decision is not None:
            return self._forward_per_example(x, out, self.state.decision)
        lead = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1])
        chosen, weights = self.route(h)
        k = chosen.shape[1]
        if self.recorder.enabled:
            self.recorder.add(self.name, self.experts[chosen].reshape(*lead, k), weights.reshape(*lead, k))
        pairs = (h, k, chosen.reshape(-1), weights.reshape(-1))  # pair p is token p // k
        if out.dtype != self.lora.a_pad.dtype:  # e.g. under autocast: add a converted copy
            return out + self.lora.delta(*pairs).reshape(*lead, -1).to(out.dtype)
        # The experts' outputs are added straight into the base output: no zeros, no extra addition.
        flat = out.reshape(-1, out.shape[-1])
        return self.lora.delta(*pairs, out=flat).view(out.shape)

    def _forward_per_example(self, x: torch.Tensor, out: torch.Tensor, decision: ExampleDecision) -> torch.Tensor:
        """Every token of example ``b`` through its chosen experts; a chosen expert that does not adapt this
        module adds nothing here (mixing outputs per example is merging the chosen deltas, and its delta is 0).

        Where each example chooses at least as many experts as this module has (the confidence fallback's
        uniform mixture), every token goes through the stacked factors as they are, weighted per example
        (``mixture_delta``). Otherwise each example's chosen factors are gathered along the rank and applied
        with batched matmuls (``example_delta``). The gathered copy (``B k r_pad`` rows) is kept through the
        decode steps of the decision when it is no larger than the stacked factors (``B k <= E``); otherwise a
        prefill gathers them for itself and decode steps, whose few tokens would not pay for that copy, go
        through the pairwise dispatch with pairs (and the used experts' factors) prepared at the first step
        and kept."""
        batch, k = decision.experts.shape
        h = x.reshape(batch, -1, x.shape[-1])
        tokens = h.shape[1]
        held = self._held(decision)
        if self.recorder.enabled:
            self.recorder.add(self.name, decision.experts[:, None].expand(batch, tokens, k).reshape(*x.shape[:-1], k),
                              held.weights[:, None].expand(batch, tokens, k).reshape(*x.shape[:-1], k))
        lora = self.lora
        keep = batch * k <= lora.num_experts
        if k >= lora.num_experts:  # each example mixes (up to) every expert here: the stack as it is
            if held.mix is None:
                held.mix = held.weights.new_zeros(batch, lora.num_experts).scatter_add_(1, held.chosen, held.weights)
            delta = partial(lora.mixture_delta, h, held.mix)
            flat = out.reshape(batch, tokens, -1)
        elif keep or tokens >= lora.a_pad.shape[1]:
            factors = held.factors or lora.example_factors(held.chosen, held.weights)
            if keep:
                held.factors = factors
            delta = partial(lora.apply_example, h, factors)
            flat = out.reshape(batch, tokens, -1)
        else:
            if held.pairs is None or held.pairs.n != batch * tokens:
                held.pairs = lora.prepare(batch * tokens, k, held.chosen.repeat_interleave(tokens, 0).reshape(-1),
                                          held.weights.repeat_interleave(tokens, 0).reshape(-1), compact=True)
            delta = partial(lora.apply, h.reshape(batch * tokens, -1), held.pairs)
            flat = out.reshape(batch * tokens, -1)
        if out.dtype != lora.a_pad.dtype:  # e.g. under autocast: add a converted copy
            return out + delta().reshape(out.shape).to(out.dtype)
        return delta(out=flat).view(out.shape)

    def _held(self, decision: ExampleDecision) -> _Held:
        """This module's view of the decision (its local expert rows and weights; the gathered factors or the
        prepared pairs once made), kept while the decision, the factors' placement and the dispatch path stay."""
        lora = self.lora
        key = (lora.a_pad.device, lora.a_pad.dtype, lora.resolved_path())
        if self._hold is None or self._hold.decision is not decision or self._hold.key != key:
            local = self.local[decision.experts]
            weights = torch.where(local >= 0, decision.weights.to(torch.float32), 0.0)
            self._hold = _Held(decision, key, local.clamp_min(0), weights)
        return self._hold


@dataclass
class _Held:
    """What a routed layer keeps of the current per-example decision (see :meth:`RoutedLinear._held`)."""

    decision: ExampleDecision
    key: tuple
    chosen: torch.Tensor
    weights: torch.Tensor
    factors: tuple[torch.Tensor, torch.Tensor] | None = None
    pairs: Pairs | None = None
    mix: torch.Tensor | None = None
