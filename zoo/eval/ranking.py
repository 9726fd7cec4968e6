"""The one ranking rule and the one oracle: the leaderboard, the CLI, the plots and the registry all use these.

Better means a higher held-out mean exact match; means within ``EM_TOLERANCE`` are a tie, broken by a
lower held-out mean NLL; a NaN (not measured) ranks last on either; what is still tied is ordered by
name, so a ranking never depends on the order rows were read in. The oracle applies the same rule per
task to single experts' task scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cmp_to_key
from typing import TypeVar

from zoo.eval.results import CandidateResult, TaskScore

RANK_METRIC = "exact_match"  # higher is better
TIE_METRIC = "nll"  # lower is better
EM_TOLERANCE = 1e-9  # means of the same counts summed in another order differ in the last bits

Score = tuple[float, float]  # (exact match, NLL): held-out means for a candidate, one task's for the oracle
T = TypeVar("T")


def score_of(metrics: dict[str, float | None]) -> Score:
    """The ranked pair of a metrics dict (a missing or ``None`` value is NaN)."""
    return _float(metrics.get(RANK_METRIC)), _float(metrics.get(TIE_METRIC))


def compare(a: Score, b: Score) -> int:
    """Negative when ``a`` ranks before ``b``, positive when after, 0 on a tie."""
    em_a, nll_a = _ordered(a)
    em_b, nll_b = _ordered(b)
    if abs(em_a - em_b) > EM_TOLERANCE:
        return -1 if em_a > em_b else 1
    return (nll_a > nll_b) - (nll_a < nll_b)


def is_better(candidate: Score, incumbent: Score) -> bool:
    """Strictly better by the rule (a tie is not better): what a champion must be beaten by."""
    return compare(candidate, incumbent) < 0


def rank(items: Sequence[T], score: Callable[[T], Score], name: Callable[[T], str]) -> list[T]:
    """``items`` best first; ties by the rule are ordered by ``name``."""
    def order(a: T, b: T) -> int:
        return compare(score(a), score(b)) or (name(a) > name(b)) - (name(a) < name(b))

    return sorted(items, key=cmp_to_key(order))


def held_out_score(result: CandidateResult) -> Score:
    """A candidate's held-out means, the pair candidates are ranked by."""
    return score_of(result.split_means()["held-out"])


def rank_results(results: Sequence[CandidateResult]) -> list[CandidateResult]:
    """Evaluated candidates, best first."""
    return rank(results, held_out_score, lambda c: c.name)


def best_per_task(results: Sequence[CandidateResult], name: str, kind: str = "oracle") -> CandidateResult:
    """The oracle over ``results``: per task, the candidate ranked first on that task's own scores."""
    if not results:
        raise ValueError(f"{name}: no candidates to choose from")
    tasks: list[TaskScore] = []
    chosen: dict[str, str] = {}
    for task in (t.task for t in results[0].tasks):
        best = rank(results, lambda c, task=task: score_of(c.task(task).metrics), lambda c: c.name)[0]
        tasks.append(best.task(task))
        chosen[task] = best.name
    return CandidateResult(name=name, kind=kind, key=None, tasks=tasks, chosen=chosen)


def _float(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _ordered(score: Score) -> Score:
    em, nll = (float(x) for x in score)
    return (-math.inf if math.isnan(em) else em), (math.inf if math.isnan(nll) else nll)
