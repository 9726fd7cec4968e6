"""Greedy soup (Wortsman et al. 2022): add experts to a uniform merge one at a time, keeping each only if it helps.

Experts are tried in order of their own score, best first; the soup starts with the best one, and each next
expert stays only if the uniform merge with it scores strictly better than without it. Scores come from
``MergeData.score``: held-in examples of the experts' own datasets through the base, never the evaluation
suite, so the choice cannot leak the held-out tasks. The result is the linear (uniform) merge of the kept
experts, exact on the factors; ``prepare`` returns the kept indices and the score trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zoo.adapters.factors import Adapter, LoraFactors
from zoo.merge.core import factored_sum, merge
from zoo.merge.registry import MergeData, MergeMethod, register


@dataclass(frozen=True)
class Soup:
    """``kept``: indices of the experts in the soup; ``trace``: ``(index tried, score with it, kept)`` in order."""

    kept: tuple[int, ...]
    trace: tuple[tuple[int, float, bool], ...]


def uniform(adapters: Sequence[Adapter]) -> Adapter:
    return merge(list(adapters), "linear")


def prepare(adapters: Sequence[Adapter], data: MergeData | None, options: dict[str, Any]) -> Soup:
    if data is None:
        raise ValueError("greedy_soup scores merges on the experts' own data: give merge() their data")
    alone = [data.score(adapter) for adapter in adapters]
    order = sorted(range(len(adapters)), key=lambda i: (alone[i], i))
    kept, best = [order[0]], alone[order[0]]
    trace = [(order[0], best, True)]
    for i in order[1:]:
        score = data.score(uniform([adapters[j] for j in [*kept, i]]))
        better = score < best
        trace.append((i, score, better))
        if better:
            kept, best = [*kept, i], score
    return Soup(tuple(sorted(kept)), tuple(trace))


def combine(name: str, idx: list[int], factors: list[LoraFactors], weights: list[float], soup: Soup,
            options: dict[str, Any]) -> LoraFactors | None:
    """The uniform merge of the kept experts that adapt this module (``None`` when none does)."""
    chosen = [(f, w) for i, f, w in zip(idx, factors, weights, strict=True) if i in soup.kept]
    if not chosen:
        return None
    return factored_sum([f for f, _ in chosen], [w for _, w in chosen], normalize=True, rank=None,
                        device=options["device"])


GREEDY_SOUP = register(
    MergeMethod(
        name="greedy_soup",
        pretty_name="Greedy soup",
        reference="Wortsman et al. 2022, Model soups, arXiv:2203.05482",
        prepare=prepare,
        combine=combine,
    )
)
