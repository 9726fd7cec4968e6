"""Harness bookkeeping without models: suite files, split means, oracle selection."""

from __future__ import annotations

import json
import math

import pytest

from zoo.eval import (
    CandidateResult,
    EvalExample,
    EvalResults,
    TaskScore,
    best_per_task,
    read_suite,
    write_suite,
)
from zoo.eval.suite import by_task, limit_per_task


def test_suite_jsonl_round_trips_and_ignores_extra_fields(tmp_path):
    examples = [EvalExample("p1", "t1", "a", "held-in", "rev", "strings"),
                EvalExample("p2", "t2", "b", "held-out")]
    path = write_suite(tmp_path / "suite.jsonl", examples)
    assert read_suite(path) == examples
    extra = {"prompt": "p", "target": "t", "task": "c", "split": "held-out", "template": "x"}
    path.write_text(json.dumps(extra) + "\n")
    assert read_suite(path) == [EvalExample("p", "t", "c", "held-out")]


def test_suite_errors_name_the_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "p", "task": "c", "split": "held-in"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing field 'target'"):
        read_suite(path)
    with pytest.raises(ValueError, match="split must be one of"):
        EvalExample("p", "t", "c", "test")
    with pytest.raises(ValueError, match="both held-in and held-out"):
        by_task([EvalExample("p", "t", "c", "held-in"), EvalExample("p", "t", "c", "held-out")])


def test_limit_per_task_keeps_the_first_examples_of_each_task():
    examples = [EvalExample(f"p{i}", "t", task, "held-in") for i in range(3) for task in ("a", "b")]
    assert [(e.task, e.prompt) for e in limit_per_task(examples, 2)] == [("a", "p0"), ("a", "p1"), ("b", "p0"),
                                                                          ("b", "p1")]
    assert limit_per_task(examples, None) == examples


def result(name: str, scores: dict[str, tuple[float, float]], kind: str = "expert") -> CandidateResult:
    """``scores[task] = (exact_match, nll)``; tasks starting with ``in`` are held-in."""
    tasks = [TaskScore(t, "held-in" if t.startswith("in") else "held-out", 4, {"exact_match": em, "nll": nll})
             for t, (em, nll) in scores.items()]
    return CandidateResult(name=name, kind=kind, key=None, tasks=tasks)


def test_split_means_are_macro_averages_over_tasks():
    r = result("a", {"in1": (1.0, 1.0), "in2": (0.0, 3.0), "out1": (0.5, 2.0)})
    assert r.split_means() == {"held-in": {"exact_match": 0.5, "nll": 2.0, "tasks": 2},
                               "held-out": {"exact_match": 0.5, "nll": 2.0, "tasks": 1}}
    empty = result("b", {"in1": (1.0, 1.0)}).split_means()["held-out"]
    assert math.isnan(empty["exact_match"]) and empty["tasks"] == 0


def test_oracle_picks_the_best_exact_match_per_task_and_breaks_ties_by_nll():
    a = result("a", {"in1": (0.9, 2.0), "out1": (0.2, 1.0), "out2": (0.5, 3.0)})
    b = result("b", {"in1": (0.1, 0.5), "out1": (0.2, 0.9), "out2": (float("nan"), float("nan"))})
    oracle = best_per_task([a, b], "oracle")
    assert oracle.chosen == {"in1": "a", "out1": "b", "out2": "a"}
    assert [t.metrics["exact_match"] for t in oracle.tasks] == [0.9, 0.2, 0.5]
    rows = EvalResults("base", [a, b, oracle]).task_rows()
    assert len(rows) == 9 and rows[-1] == {"candidate": "oracle", "kind": "oracle", "key": None, "task": "out2",
                                           "split": "held-out", "n": 4, "exact_match": 0.5, "nll": 3.0, "chosen": "a"}
