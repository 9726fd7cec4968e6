"""The one ranking rule and the one oracle (``zoo.eval.ranking``), and the tables and charts that use them."""

from __future__ import annotations

import math

from rich.console import Console

from zoo.eval import (
    CandidateResult,
    EvalResults,
    TaskScore,
    best_per_task,
    leaderboard_table,
    rank_results,
)
from zoo.eval.ranking import EM_TOLERANCE, compare, is_better, rank


def _candidate(name: str, held_out: tuple[float, float], held_in: tuple[float, float] = (0.0, 1.0)) -> CandidateResult:
    tasks = [TaskScore("in", "held-in", 4, {"exact_match": held_in[0], "nll": held_in[1]}),
             TaskScore("out", "held-out", 4, {"exact_match": held_out[0], "nll": held_out[1]})]
    return CandidateResult(name=name, kind="merge", key=name, tasks=tasks)


def test_higher_exact_match_wins_then_lower_nll_and_nan_ranks_last():
    assert compare((0.6, 9.0), (0.5, 1.0)) < 0
    assert compare((0.5, 0.9), (0.5, 1.0)) < 0
    assert compare((0.5, 1.0), (0.5, 1.0)) == 0
    assert compare((math.nan, 0.1), (0.0, 5.0)) > 0
    assert compare((0.5, math.nan), (0.5, 9.0)) > 0
    assert compare((0.5 + EM_TOLERANCE / 2, 2.0), (0.5, 1.0)) > 0  # a tie within the tolerance goes to the NLL
    assert is_better((0.3, 0.9), (0.1 + 0.2, 1.0)) and not is_better((0.5, 1.0), (0.5, 1.0))


def test_ties_are_ordered_by_name_whatever_the_input_order():
    names = ["b", "a", "c"]
    tied = [(n, (0.5, 1.0)) for n in names]
    for order in (tied, tied[::-1]):
        assert [n for n, _ in rank(order, lambda x: x[1], lambda x: x[0])] == ["a", "b", "c"]


def test_candidates_rank_by_held_out_not_held_in():
    results = [_candidate("held-in-star", (0.2, 1.0), held_in=(1.0, 0.1)), _candidate("nan", (math.nan, math.nan)),
               _candidate("close-call", (0.5, 1.2)), _candidate("winner", (0.5, 1.1))]
    assert [c.name for c in rank_results(results)] == ["winner", "close-call", "held-in-star", "nan"]


def test_the_oracle_uses_the_same_rule_per_task_with_names_breaking_exact_ties():
    a, b = _candidate("b-expert", (0.5, 1.0), (0.9, 3.0)), _candidate("a-expert", (0.5, 1.0), (0.9, 2.0))
    oracle = best_per_task([a, b], "oracle")
    assert oracle.chosen == {"in": "a-expert", "out": "a-expert"}
    assert best_per_task([b, a], "oracle").chosen == oracle.chosen


def test_the_rich_leaderboard_lists_candidates_in_rank_order_with_every_metric():
    results = EvalResults("base", [_candidate("second", (0.5, 2.0)), _candidate("first", (0.5, 1.0))],
                          settings={"tasks": 2, "examples": 8})
    console = Console(width=250, record=True)
    console.print(leaderboard_table(results))
    text = console.export_text()
    assert text.index("first") < text.index("second")
    assert "held-out exact_match" in text and "held-out nll" in text
