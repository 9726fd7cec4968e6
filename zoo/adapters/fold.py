"""Folding an adapter into the base weights (``W <- W + dW``): how single experts and merges are served.

Folded, a candidate runs at the base model's speed (no extra matmuls). ``folded`` undoes it exactly when
its block ends, so one loaded base scores many candidates without drift; ``fold`` keeps it (serving).
Both check first that every update fits its base weight, so an adapter of another base fails up front.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from zoo.adapters.factors import Adapter


def check_fits_model(model: nn.Module, adapter: Adapter) -> None:
    """Raise ``InvalidAdapter`` unless every module the adapter touches is in ``model`` with a matching weight."""
    shapes = {name: module.weight.shape for name, module in model.named_modules()
              if isinstance(getattr(module, "weight", None), torch.Tensor)}
    adapter.check_fits(shapes)


@torch.no_grad()
def fold(model: nn.Module, adapter: Adapter) -> None:
    """``W <- W + dW`` for good."""
    check_fits_model(model, adapter)
    for name in adapter.modules:
        weight = model.get_submodule(name).weight
        weight.add_(adapter.delta(name).to(weight.device, weight.dtype))


@contextmanager
def folded(model: nn.Module, adapter: Adapter) -> Iterator[nn.Module]:
    """``W <- W + dW`` for the block; the original weights are copied back bit-exactly on exit."""
    check_fits_model(model, adapter)
    saved: dict[str, torch.Tensor] = {}
    try:
        with torch.no_grad():
            for name in adapter.modules:
                weight = model.get_submodule(name).weight
                saved[name] = weight.detach().clone()
                weight.add_(adapter.delta(name).to(weight.device, weight.dtype))
        yield model
    finally:
        with torch.no_grad():
            for name, original in saved.items():
                model.get_submodule(name).weight.copy_(original)
