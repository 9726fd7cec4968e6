"""``RoutedLinear``: a base linear layer plus per-token top-k routing over the library's LoRA experts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from zoo.adapters.factors import LoraFactors
from zoo.routing.dispatch import StackedLora
from zoo.routing.recorder import RoutingRecorder
from zoo.routing.registry import RouterSpec


class RoutedLinear(nn.Module):
    """``y = base(x) + sum_{e in topk(x)} w_e B_e A_e x`` with ``w`` the softmax over the kept logits.

    ``base`` is the untouched original module (``nn.Linear`` or GPT-2 ``Conv1D``: LoRA factors are in the
    mathematical layout either way). ``experts: (E,)`` are the library indices of the experts that adapt
    this module, in the order of ``factors`` and of the routing ``vectors: (E, d_in)``; ``sign_free: (E,)``
    marks vectors whose sign is arbitrary (Arrow prototypes). The vectors are prepared for ``config`` once,
    here: a later change of ``config`` may change ``top_k`` or the temperature, not how vectors are prepared.
    """

    def __init__(
        self,
        name: str,
        base: nn.Module,
        factors: Sequence[LoraFactors],
        experts: Sequence[int],
        vectors: torch.Tensor,
        sign_free: torch.Tensor,
        router: RouterSpec,
        config: Any,
        recorder: RoutingRecorder,
    ) -> None:
        super().__init__()
        if not (len(factors) == len(experts) == vectors.shape[0] == sign_free.shape[0]):
            raise ValueError(f"{name}: {len(factors)} experts' factors but {vectors.shape[0]} routing vectors")
        weight = base.weight
        self.name = name
        self.base = base
        self.lora = StackedLora(factors, weight.device, weight.dtype)
        self.router = router
        self.config = config
        self.recorder = recorder
        prepared = router.prepare(vectors.to(device=weight.device, dtype=torch.float32), config)
        self.register_buffer("vectors", prepared.contiguous(), persistent=False)
        # None when no vector is sign-free, so the router skips the per-token absolute value there.
        self.register_buffer("sign_free", sign_free.to(weight.device, torch.bool) if sign_free.any() else None,
                             persistent=False)
        self.register_buffer("experts", torch.as_tensor(list(experts), dtype=torch.long, device=weight.device),
                             persistent=False)

    @property
    def top_k(self) -> int:
        return min(self.config.top_k, self.vectors.shape[0])

    def route(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h: (n, d_in)`` -> local expert indices ``(n, k)`` and their softmax weights ``(n, k)``.

        Scores are computed in float32 even in a half-precision model (whose ``.to(bf16)`` also casts the
        vectors): the scores are cheap, and half precision would turn close scores into ties.
        """
        logits = self.router.logits(h.float(), self.vectors.float(), self.config, self.sign_free)
        kept, chosen = logits.topk(self.top_k, dim=-1)
        return chosen, kept.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
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
