"""The metric registry and the two built-in metrics, on hand-made per-example results."""

from __future__ import annotations

import math

import pytest

from zoo.eval.metrics import METRICS, ExampleResult, get_metric, register
from zoo.eval.scoring import compute_metrics


def _results(*pairs: tuple[str | None, str], nll: float = 1.0) -> list[ExampleResult]:
    return [ExampleResult("p", target, completion, nll) for completion, target in pairs]


def test_the_built_in_metrics_register_themselves_with_their_direction():
    assert {"exact_match", "nll"} <= set(METRICS)
    assert get_metric("exact_match").higher_is_better and not get_metric("nll").higher_is_better
    assert all(m.description for m in METRICS.values())
    with pytest.raises(KeyError, match="known metrics"):
        get_metric("bleu-9000")


def test_exact_match_strips_outer_whitespace_only():
    exact_match = get_metric("exact_match").compute
    assert exact_match(_results((" cba\n", "cba"), ("CBA", "cba"), ("c ba", "cba"), ("cba", " cba "))) == 0.5
    assert math.isnan(exact_match(_results((None, "cba"))))  # generation skipped
    assert math.isnan(exact_match([]))


def test_nll_is_the_mean_over_examples():
    results = [ExampleResult("p", "t", "t", 1.0), ExampleResult("p", "t", "t", 2.0), ExampleResult("p", "t", None, 6.0)]
    assert get_metric("nll").compute(results) == 3.0
    assert math.isnan(get_metric("nll").compute([]))


def test_scoring_computes_every_registered_metric_from_one_set_of_results():
    metrics = compute_metrics(_results(("a", "a"), ("b", "c"), nll=0.5))
    assert set(metrics) == set(METRICS)
    assert metrics["exact_match"] == 0.5 and metrics["nll"] == 0.5


def test_a_metric_name_is_registered_once():
    with pytest.raises(ValueError, match="registered twice"):
        register("nll", higher_is_better=False, description="again")(lambda results: 0.0)
    assert METRICS["nll"].description.startswith("mean target")
