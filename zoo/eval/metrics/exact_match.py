"""Exact match: the share of examples whose greedy completion equals the target.

Normalisation: both sides are stripped of leading and trailing whitespace, nothing else (case,
punctuation and inner spaces count), and the completion is already cut at its first stop string
(``zoo.eval.generation``). Without completions (generation skipped) the metric is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from zoo.eval.metrics.registry import ExampleResult, register


def normalise(text: str) -> str:
    return text.strip()


@register("exact_match", higher_is_better=True,
          description="share of greedy completions equal to the target, both stripped of outer whitespace")
def exact_match(results: Sequence[ExampleResult]) -> float:
    if not results or any(r.completion is None for r in results):
        return math.nan
    return sum(normalise(r.completion) == normalise(r.target) for r in results) / len(results)
