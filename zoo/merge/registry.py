"""Merge methods as rows of a table: a generalised task arithmetic parameterised by its steps.

``sparsify -> (optional) elect sign -> weighted sum -> re-factor`` (mergekit's design): TIES is
"magnitude sparsification + sign consensus", not a copy of task arithmetic. Each method module registers
one :class:`MergeMethod`; ``merge()`` looks it up by name.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from zoo.registry import Registry

Sparsify = Literal["magnitude", "random", "outliers"]


@dataclass(frozen=True)
class MergeMethod:
    """A named merge: its steps, default options and the paper it comes from.

    ``factored`` methods never leave factor space (exact, no dense ``dW``). ``normalize`` divides the
    weighted sum by the sum of the weights (restricted, per entry, to the adapters that survive the sign
    election when ``consensus`` is set). ``defaults`` lists every option the method accepts.

    A method that is not a composition of those steps brings its own ``combine(name, indices, factors,
    weights, prepared, options) -> LoraFactors`` per module, after ``prepare(adapters, data, options)``
    has read what it needs once (``data``: :class:`MergeData`, for data-aware methods such as RegMean).
    """

    name: str
    pretty_name: str
    reference: str
    sparsify: Sparsify | None = None
    consensus: Literal["sign"] | None = None
    normalize: bool = False
    factored: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[..., Any] | None = None
    combine: Callable[..., Any] | None = None


class MergeData(Protocol):
    """What data-aware merges read about the adapters being merged, in their order."""

    def grams(self, adapter: int, modules: Collection[str]) -> dict[str, torch.Tensor]:
        """``X^T X`` of each module's inputs ``X: (tokens, d_in)`` over adapter ``adapter``'s training examples,
        run through the base model."""

    def score(self, merged: Any) -> float:
        """How well the base with the adapter ``merged`` folded in does on held-in examples from the adapters'
        own datasets (mean target NLL: lower is better); never the evaluation suite."""


METHODS: Registry[MergeMethod] = Registry("merge method")


def register(method: MergeMethod) -> MergeMethod:
    """Add ``method`` to :data:`METHODS` (one call per method module)."""
    return METHODS.add(method.name, method)


def get_method(name: str) -> MergeMethod:
    return METHODS.known(name)
