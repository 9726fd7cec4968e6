"""The router contract: what a router plug-in provides, so that the runtime, the library and the pipeline
never name one.

A router has a settings dataclass (``config_class``, always with ``top_k``), optionally the settings of
fitting it (``fit_class``, e.g. PHATGOOSE's gate training), and two jobs:

* ``fit``: from the library's experts (and, for data-aware routers, the experts' training examples and the
  loaded base model, through :class:`FitData`), the per-module routing vectors and, per member, a note of
  how its vectors were made (``routed_by``; the library stores it and hands it back at load time);
* routing, at one of two granularities:

  - **per token** (``per_example = False``): ``scorer(vectors, routed_by, config)`` returns a module that
    maps a routed layer's input ``h: (n, d_in)`` to logits ``(n, E)`` over the module's experts;
  - **per example** (``per_example = True``): ``decide(model, input_ids, attention_mask, state, config)``
    is called once per prompt, at prefill, and returns each example's experts and weights over the whole
    library ``(B, k)``; every routed layer applies that choice to all of the example's tokens, and
    ``generate``'s decode steps keep it (the runtime makes the call and keeps the decision).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from zoo.adapters.factors import Adapter
from zoo.routing.vectors import ModuleRouting


class FitData(Protocol):
    """What a data-aware router may read while fitting: the members' training examples and the base model."""

    def examples(self, member: int) -> list[tuple[str, str]]:
        """(prompt, target) pairs member ``member`` was trained on; empty when unknown."""

    def base_model(self) -> tuple[nn.Module, Any]:
        """The base model (loaded once, on the build's device) and its tokenizer."""


@dataclass(frozen=True)
class Fitted:
    """A fitted router: ``routing[module]``, ``routed_by[i]`` (how member ``i``'s vectors were made) and
    ``state``: tensors of the router as a whole (a per-example router's expert embeddings, say)."""

    routing: dict[str, ModuleRouting]
    routed_by: list[str]
    state: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ExampleDecision:
    """A per-example router's choice: ``experts: (B, k)`` library indices, ``weights: (B, k)`` summing to 1;
    ``fallback: (B,)`` (when the router has a confidence rule) is true where it chose no expert because the
    prompt was unfamiliar, and the weights are its fallback mixture instead."""

    experts: torch.Tensor
    weights: torch.Tensor
    fallback: torch.Tensor | None = None


class Router:
    """Base class of router plug-ins; subclasses set the class attributes and implement their granularity."""

    name: str
    reference: str
    config_class: type
    fit_class: type | None = None
    per_example: bool = False

    def fit(self, experts: Sequence[Adapter], config: Any, fit_config: Any, data: FitData | None) -> Fitted:
        raise NotImplementedError

    def scorer(self, vectors: torch.Tensor, routed_by: Sequence[str], config: Any) -> nn.Module:
        """Per-token routers: a module mapping ``h: (n, d_in)`` (float32) to logits ``(n, E)``."""
        raise NotImplementedError(f"router {self.name!r} routes per example, not per token")

    def decide(self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               state: Mapping[str, torch.Tensor], config: Any) -> ExampleDecision:
        """Per-example routers: each prompt's experts, from the prompt alone (routing is off while this runs)."""
        raise NotImplementedError(f"router {self.name!r} routes per token, not per example")
