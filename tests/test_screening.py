"""The first pass of successive halving (``zoo.eval.screening``): which examples it reads, who goes on."""

from __future__ import annotations

import math

import pytest

from zoo.eval.screening import Screened, screening_sample, survivors
from zoo.eval.suite import EvalExample


def _example(task: str, split: str, i: int) -> EvalExample:
    return EvalExample(f"{task} {i}", "t", task, split)


def test_the_sample_reads_held_in_tasks_only_the_first_examples_of_each() -> None:
    suite = [_example(t, s, i) for t, s in (("a", "held-in"), ("b", "held-out"), ("c", "held-in"))
             for i in range(5)]
    sample = screening_sample(suite, 2)
    assert [(e.task, e.prompt) for e in sample] == [("a", "a 0"), ("a", "a 1"), ("c", "c 0"), ("c", "c 1")]
    with pytest.raises(ValueError, match="no held-in examples"):
        screening_sample([e for e in suite if e.split == "held-out"], 2)
    with pytest.raises(ValueError, match="at least one example"):
        screening_sample(suite, 0)


def test_survivors_are_the_best_the_best_of_each_kind_and_the_named_references() -> None:
    screened = [Screened("m1", "merge", 1.0), Screened("m2", "merge", 1.5), Screened("l1", "library", 0.5),
                Screened("e1", "expert", 3.0), Screened("e2", "expert", 2.5), Screened("base", "base", 4.0),
                Screened("broken", "merge", math.nan)]
    assert survivors(screened, 2) == ["l1", "m1", "e2", "base"]
    assert survivors(screened, 1, always=["m2"]) == ["l1", "m1", "m2", "e2", "base"]
    assert survivors(screened, 10) == ["l1", "m1", "m2", "e2", "e1", "base", "broken"]  # NaN ranks last
    with pytest.raises(ValueError, match="at least one"):
        survivors(screened, 0)
