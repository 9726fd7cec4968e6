"""``RoutedLinear``: a base linear layer plus top-k routing over the library's LoRA experts that adapt it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from zoo.adapters.factors import LoraFactors
from zoo.routing.dispatch import StackedLora
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

        With at least ``r_pad`` tokens per example (a prefill) each example's factors are gathered once and
        applied with batched matmuls (``example_delta``); with fewer (decode steps) copying ``r_pad`` factor
        rows per example would outweigh copying its few tokens, so they go through the pairwise dispatch."""
        batch, k = decision.experts.shape
        local = self.local[decision.experts]
        weights = torch.where(local >= 0, decision.weights.to(torch.float32), 0.0)
        chosen, h = local.clamp_min(0), x.reshape(batch, -1, x.shape[-1])
        tokens = h.shape[1]
        if self.recorder.enabled:
            self.recorder.add(self.name, decision.experts[:, None].expand(batch, tokens, k).reshape(*x.shape[:-1], k),
                              weights[:, None].expand(batch, tokens, k).reshape(*x.shape[:-1], k))
        if tokens >= self.lora.a_pad.shape[1]:
            delta = partial(self.lora.example_delta, h, chosen, weights)
            flat = out.reshape(batch, tokens, -1)
        else:
            pairs = (h.reshape(batch * tokens, -1), k, chosen.repeat_interleave(tokens, 0).reshape(-1),
                     weights.repeat_interleave(tokens, 0).reshape(-1))
            delta = partial(self.lora.delta, *pairs)
            flat = out.reshape(batch * tokens, -1)
        if out.dtype != self.lora.a_pad.dtype:  # e.g. under autocast: add a converted copy
            return out + delta().reshape(out.shape).to(out.dtype)
        return delta(out=flat).view(out.shape)
