"""The metric registry: each metric is a named function of one task's per-example results.

Scoring runs the model once per example (one teacher-forced pass for the NLL, one greedy generation) and
hands the results to every registered metric, so a new metric never runs the model again and never
touches the harness, the catalog schema or the registry: it is one file in this folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zoo.registry import Registry


@dataclass(frozen=True)
class ExampleResult:
    """One scored example: ``completion`` is the greedy answer (``None`` when generation was skipped),
    ``nll`` the mean negative log-likelihood of ``target </s>`` in nats per token."""

    prompt: str
    target: str
    completion: str | None
    nll: float


MetricFunction = Callable[[Sequence[ExampleResult]], float]


@dataclass(frozen=True)
class Metric:
    """A registered metric; ``higher_is_better`` says which way ranking and plots read it."""

    name: str
    compute: MetricFunction
    higher_is_better: bool
    description: str


METRICS: Registry[Metric] = Registry("metric")


def register(name: str, *, higher_is_better: bool, description: str) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator that registers ``compute`` under ``name`` (names are unique)."""

    def add(compute: MetricFunction) -> MetricFunction:
        METRICS.add(name, Metric(name, compute, higher_is_better, description))
        return compute

    return add


def get_metric(name: str) -> Metric:
    return METRICS.known(name)
