"""A LoRA adapter folded into the base weights for the length of a block, then exactly undone.

Single experts and merges are deployed as plain weight updates (``W0 + B A``), so that is how they are
scored: no extra matmuls, the same speed as the base. The original weights are kept aside and copied
back, so one loaded base serves every candidate without drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from zoo.adapters.factors import Adapter


@contextmanager
def folded_adapter(model: nn.Module, adapter: Adapter) -> Iterator[nn.Module]:
    """``W <- W + dW`` for every module the adapter touches; restored bit-exactly on exit."""
    saved: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for name in adapter.modules:
                weight = model.get_submodule(name).weight
                delta = adapter.delta(name)
                if tuple(delta.shape) != tuple(weight.shape):
                    raise ValueError(f"{name}: the adapter's update is {tuple(delta.shape)} but the base weight is "
                                     f"{tuple(weight.shape)}; was it trained for another base?")
                saved[name] = weight.detach().clone()
                weight.add_(delta.to(weight.device, weight.dtype))
        yield model
    finally:
        with torch.no_grad():
            for name, original in saved.items():
                model.get_submodule(name).weight.copy_(original)
