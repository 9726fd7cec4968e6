"""Target NLL: how surprised the model is by the reference answer, even when it does not generate it.

The mean over examples of each example's mean NLL per target token (``target </s>``, nats): a smooth
signal that separates candidates whose exact match ties.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from zoo.eval.metrics.registry import ExampleResult, register


@register("nll", higher_is_better=False, description="mean target negative log-likelihood, nats per token")
def nll(results: Sequence[ExampleResult]) -> float:
    return sum(r.nll for r in results) / len(results) if results else math.nan
