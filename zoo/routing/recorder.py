"""Routing decisions for inspection: per routed layer, which experts each token used and with what weight.

Off by default; when off a layer pays one attribute check per forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


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
    """Collects :class:`RoutingRecord` s per layer name while :meth:`recording` is active."""

    enabled: bool = False
    records: dict[str, list[RoutingRecord]] = field(default_factory=dict)

    def add(self, layer: str, experts: torch.Tensor, weights: torch.Tensor) -> None:
        self.records.setdefault(layer, []).append(RoutingRecord(experts.detach(), weights.detach()))

    @contextmanager
    def recording(self) -> Iterator[RoutingRecorder]:
        """Clear earlier records and record until the block ends."""
        self.records = {}
        self.enabled = True
        try:
            yield self
        finally:
            self.enabled = False
