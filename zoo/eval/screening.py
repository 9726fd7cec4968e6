"""Successive halving for evaluation: a cheap first pass decides which candidates are worth the full one.

The full pass (greedy generation and NLL on every example of every task) costs about a minute per
candidate for a 135M model on one CPU core, and a zoo of 16 adapters yields some fifty candidates. The
first pass scores only the target NLL (one forward, no generation) of a few examples of each *held-in*
task: it never looks at held-out tasks, which the leaderboard ranks by. Candidates whose held-in NLL is
clearly behind are dropped there; a few reference rows always go through (the best-screened candidate of
each kind, and any the caller names, such as the base and the uniform merge), so that the leaderboard
still compares the winners with what the user already had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zoo.eval.suite import HELD_IN, EvalExample


@dataclass(frozen=True)
class Screened:
    """One candidate's first-pass result: lower ``held_in_nll`` is better (NaN: not measured, last)."""

    name: str
    kind: str
    held_in_nll: float


def screening_sample(suite: Sequence[EvalExample], per_task: int) -> list[EvalExample]:
    """The first ``per_task`` examples of each held-in task, in suite order."""
    if per_task < 1:
        raise ValueError(f"a screening needs at least one example per task, got {per_task}")
    taken: dict[str, int] = {}
    sample = []
    for example in suite:
        if example.split == HELD_IN and taken.get(example.task, 0) < per_task:
            taken[example.task] = taken.get(example.task, 0) + 1
            sample.append(example)
    if not sample:
        raise ValueError("the suite has no held-in examples to screen candidates on")
    return sample


def survivors(screened: Sequence[Screened], keep: int, always: Iterable[str] = ()) -> list[str]:
    """Names that go on to the full pass: the ``keep`` lowest held-in NLLs, the lowest of each kind, and
    ``always`` (where screened); in screening order, best first."""
    if keep < 1:
        raise ValueError(f"keep at least one candidate, got {keep}")
    ordered = sorted(screened, key=lambda s: (math.inf if math.isnan(s.held_in_nll) else s.held_in_nll, s.name))
    chosen = {s.name for s in ordered[:keep]} | set(always)
    best_of_kind: dict[str, str] = {}
    for s in ordered:
        best_of_kind.setdefault(s.kind, s.name)
    chosen |= set(best_of_kind.values())
    return [s.name for s in ordered if s.name in chosen]
