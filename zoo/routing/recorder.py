"""Routing decisions for inspection: per routed layer, which experts each token used and with what weight;
for a per-example router also its decision per example, once per prefill.

Off by default; when off a layer pays one attribute check per forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from zoo.routing.router import ExampleDecision


@dataclass(frozen=True)
class RoutingRecord:
    """One forward call of one layer: ``experts: (*lead, k)`` library indices, ``weights: (*lead, k)``.

    ``lead`` is the input's leading shape, ``(batch, seq)`` for a causal LM (``seq`` is 1 while
    ``generate`` decodes with a cache).
    """

    experts: torch.Tensor
    weights: torch.Tensor


@dataclass
class RoutingRecorder:
    """Collects :class:`RoutingRecord` s per layer name while :meth:`recording` is active, and a per-example
    router's decisions (``examples``: one :class:`ExampleDecision` per prefill, in order)."""

    enabled: bool = False
    records: dict[str, list[RoutingRecord]] = field(default_factory=dict)
    examples: list[ExampleDecision] = field(default_factory=list)

    def add(self, layer: str, experts: torch.Tensor, weights: torch.Tensor) -> None:
        self.records.setdefault(layer, []).append(RoutingRecord(experts.detach(), weights.detach()))

    def add_examples(self, decision: ExampleDecision) -> None:
        fallback = None if decision.fallback is None else decision.fallback.detach()
        self.examples.append(ExampleDecision(decision.experts.detach(), decision.weights.detach(), fallback))

    @contextmanager
    def recording(self) -> Iterator[RoutingRecorder]:
        """Clear earlier records and record until the block ends."""
        self.records, self.examples = {}, []
        self.enabled = True
        try:
            yield self
        finally:
            self.enabled = False
