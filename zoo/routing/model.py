"""Inject routed layers into any ``transformers`` causal LM, in place, so ``forward`` and ``generate`` route.

Every module that at least one expert adapts becomes a :class:`RoutedLinear` over the experts that adapt
it (experts may target different module subsets). The model stays a plain ``PreTrainedModel``;
:meth:`RoutingHandle.remove` puts the original modules back, so one loaded base can serve many candidates.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from zoo.adapters.factors import Adapter
from zoo.routing.layer import RoutedLinear
from zoo.routing.recorder import RoutingRecorder
from zoo.routing.registry import get_router, router_config
from zoo.routing.vectors import ModuleRouting


@dataclass
class RoutingHandle:
    """What :func:`route_model` did: the routed layers by module name and the shared recorder."""

    model: nn.Module
    layers: dict[str, RoutedLinear]
    recorder: RoutingRecorder

    @contextmanager
    def recording(self) -> Iterator[RoutingRecorder]:
        """Record every routed layer's decisions until the block ends."""
        with self.recorder.recording() as recorder:
            yield recorder

    def remove(self) -> None:
        """Put the original modules back (the model is exactly the base again)."""
        for name, layer in self.layers.items():
            replace_module(self.model, name, layer.base)
        self.layers = {}


def route_model(
    model: nn.Module,
    experts: Sequence[Adapter],
    routing: Mapping[str, ModuleRouting],
    router: str,
    config: Any = None,
    sign_free: Collection[int] = (),
) -> RoutingHandle:
    """Replace every module in ``routing`` by a :class:`RoutedLinear` over its experts; returns the handle.

    ``config`` is the router's config object or plain settings (``None``: defaults). ``sign_free`` lists
    the library indices whose vectors are Arrow prototypes (a PHATGOOSE library's fallbacks; the Arrow
    router scores every vector sign-free anyway). Factors take the base weight's device and dtype.
    """
    spec = get_router(router)
    if not isinstance(config, spec.config_class):
        config = router_config(router, config)
    _check_coverage(experts, routing)
    sign_free = set(sign_free)
    recorder = RoutingRecorder()
    layers: dict[str, RoutedLinear] = {}
    for name, entry in routing.items():
        base = _target(model, name)
        factors = [experts[e].modules[name] for e in entry.experts]
        _check_shape(name, base, factors[0].d_in, factors[0].d_out)
        flags = torch.tensor([e in sign_free for e in entry.experts], dtype=torch.bool)
        layers[name] = RoutedLinear(name, base, factors, entry.experts, entry.vectors, flags, spec, config, recorder)
    for name, layer in layers.items():
        replace_module(model, name, layer)
    return RoutingHandle(model, layers, recorder)


def _check_coverage(experts: Sequence[Adapter], routing: Mapping[str, ModuleRouting]) -> None:
    """Every (expert, module) pair must have exactly one routing vector, or the expert would be dropped silently."""
    for e, adapter in enumerate(experts):
        for name in adapter.modules:
            if name not in routing or e not in routing[name].experts:
                raise ValueError(f"expert {e} adapts {name} but has no routing vector for it")
    for name, entry in routing.items():
        for e in entry.experts:
            if not 0 <= e < len(experts) or name not in experts[e].modules:
                raise ValueError(f"{name}: routing vector for expert {e}, which does not adapt this module")


def _target(model: nn.Module, name: str) -> nn.Module:
    try:
        module = model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"the model has no module {name!r}: was the library built for another base?") from err
    if isinstance(module, RoutedLinear):
        raise ValueError(f"{name} is already routed; remove the other routing first")
    return module


def _check_shape(name: str, module: nn.Module, d_in: int, d_out: int) -> None:
    """The base must be a linear map ``d_in -> d_out``: ``nn.Linear`` or a ``Conv1D`` (weight ``(d_in, d_out)``)."""
    if isinstance(module, nn.Linear):
        shape = (module.in_features, module.out_features)
    elif type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None:
        shape = tuple(module.weight.shape)
    else:
        raise ValueError(f"{name} is a {type(module).__name__}; only linear layers can be routed")
    if shape != (d_in, d_out):
        raise ValueError(f"{name}: the base maps {shape[0]} -> {shape[1]} but the experts map {d_in} -> {d_out}")


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``name`` of ``model``."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
