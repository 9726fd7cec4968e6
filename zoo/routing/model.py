"""Inject routed layers into any ``transformers`` causal LM, in place, so ``forward`` and ``generate`` route.

Every module that at least one expert adapts becomes a :class:`RoutedLinear` over the experts that adapt
it (experts may target different module subsets). The model stays a plain ``PreTrainedModel``;
:meth:`RoutingHandle.remove` puts the original modules back, so one loaded base can serve many candidates.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from zoo.adapters.factors import Adapter
from zoo.routing.layer import RoutedLinear, RoutingState
from zoo.routing.prompt import prompt_only
from zoo.routing.recorder import RoutingRecorder
from zoo.routing.registry import get_router, router_config
from zoo.routing.router import Router
from zoo.routing.vectors import ModuleRouting


@dataclass
class RoutingHandle:
    """What :func:`route_model` did: the routed layers by module name, the shared recorder and state."""

    model: nn.Module
    layers: dict[str, RoutedLinear]
    recorder: RoutingRecorder
    state: RoutingState = field(default_factory=RoutingState)
    hook: RemovableHandle | None = None

    @contextmanager
    def recording(self) -> Iterator[RoutingRecorder]:
        """Record every routed layer's decisions until the block ends."""
        with self.recorder.recording() as recorder:
            yield recorder

    def remove(self) -> None:
        """Put the original modules back (the model is exactly the base again)."""
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        for name, layer in self.layers.items():
            replace_module(self.model, name, layer.base)
        self.layers = {}
        self.state.decision = None


def route_model(
    model: nn.Module,
    experts: Sequence[Adapter],
    routing: Mapping[str, ModuleRouting],
    router: str,
    config: Any = None,
    routed_by: Sequence[str] | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
) -> RoutingHandle:
    """Replace every module in ``routing`` by a :class:`RoutedLinear` over its experts; returns the handle.

    ``config`` is the router's config object or plain settings (``None``: defaults). ``routed_by[i]`` is the
    router's note of how member ``i``'s vectors were made and ``state`` its router-wide tensors (both from
    its ``fit``; a library stores them). A per-example router decides at every prefill (a forward without a filled cache) and the decision holds
    through the decode steps. Factors take the base weight's device and dtype.
    """
    spec = get_router(router)
    if not isinstance(config, spec.config_class):
        config = router_config(router, config)
    notes = list(routed_by) if routed_by is not None else [""] * len(experts)
    if len(notes) != len(experts):
        raise ValueError(f"{len(notes)} routed_by notes for {len(experts)} experts")
    _check_coverage(experts, routing)
    recorder, shared = RoutingRecorder(), RoutingState()
    layers: dict[str, RoutedLinear] = {}
    for name, entry in routing.items():
        base = _target(model, name)
        factors = [experts[e].modules[name] for e in entry.experts]
        _check_shape(name, base, factors[0].d_in, factors[0].d_out)
        scorer = None if spec.per_example else spec.scorer(entry.vectors, [notes[e] for e in entry.experts], config)
        layers[name] = RoutedLinear(name, base, factors, entry.experts, scorer, config.top_k, recorder, shared,
                                    len(experts))
    for name, layer in layers.items():
        replace_module(model, name, layer)
    handle = RoutingHandle(model, layers, recorder, shared)
    if spec.per_example:
        decide = partial(_decide_at_prefill, router=spec, tensors=dict(state or {}), config=config, state=shared,
                         recorder=recorder)
        handle.hook = model.register_forward_pre_hook(decide, with_kwargs=True)
    return handle


def _decide_at_prefill(model: nn.Module, args: tuple, kwargs: dict, *, router: Router,
                       tensors: Mapping[str, torch.Tensor], config: Any, state: RoutingState,
                       recorder: RoutingRecorder) -> None:
    """Before a forward: at prefill (no cache, or an empty one) the router decides for each prompt, with
    routing off, and the recorder (when on) keeps the decision; during decoding the decision made at prefill
    stays. A teacher-forced forward that declared where its prompts end
    (:func:`zoo.routing.prompt.prompt_positions`) is decided on the prompts alone."""
    if state.off:  # the router's own look at the base model, from inside ``decide``
        return
    cache = kwargs.get("past_key_values")
    if cache is not None and cache.get_seq_length() > 0 and state.decision is not None:
        return
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is None:
        raise ValueError(f"router {router.name!r} decides per example from input_ids, but the model got none")
    input_ids, attention_mask = prompt_only(input_ids, kwargs.get("attention_mask"))
    state.off = True
    try:
        state.decision = router.decide(model, input_ids, attention_mask, tensors, config)
    finally:
        state.off = False
    if recorder.enabled:
        recorder.add_examples(state.decision)


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
