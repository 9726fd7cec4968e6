"""Results as plain dataclasses: per task, per split (the mean over tasks), per candidate, as flat rows.

Scores are ``metrics`` dicts keyed by registered metric name (``zoo.eval.metrics``), so a new metric
flows through without a new field. Split means are macro averages (every task weighs the same), so a
task with few examples, such as a lookup table, counts as much as a big one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.eval.suite import SPLITS


@dataclass(frozen=True)
class TaskScore:
    """One candidate on one task: ``metrics[name]`` for every registered metric (NaN: not measured)."""

    task: str
    split: str
    n: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class RoutingScore:
    """Where a routed candidate sent one task's tokens (top-1 expert per token and routed layer).

    ``skill``/``family``: fraction of tokens routed to an expert of the task's skill/family (``None`` when
    no member has it); ``target_skill``: the same over target tokens only; ``sequence_skill``: fraction of
    examples whose expert with the most routing weight (summed over tokens and layers) has the skill;
    ``chance_skill``: the fraction a uniform router would get; ``expert_share[i]``: the fraction of
    (token, routed layer) pairs whose top-1 expert is member ``i`` (the routing histogram).

    A per-example router's own decisions (``None`` for per-token routers): ``example_task`` /
    ``example_skill`` / ``example_family``, the fraction of examples whose top expert (most weight) is
    labelled with the example's task / skill / family (an example the router fell back on counts as a
    miss: it chose no expert); ``example_fallback``, the fraction it fell back on.
    """

    task: str
    split: str
    tokens: int
    skill: float | None
    family: float | None
    target_skill: float | None
    sequence_skill: float | None
    chance_skill: float | None
    expert_share: list[float] = field(default_factory=list)
    example_task: float | None = None
    example_skill: float | None = None
    example_family: float | None = None
    example_fallback: float | None = None


@dataclass(frozen=True)
class Cost:
    """``build_s``: merging, gate training, library building; ``eval_s``: scoring; ``peak_mb`` above the
    memory in use when the candidate started, measured as ``memory`` says (``rss-sampled``, ``maxrss``, ``cuda``)."""

    build_s: float
    eval_s: float
    peak_mb: float
    memory: str


@dataclass
class CandidateResult:
    """A candidate's scores; ``chosen`` (derived rows only) names the candidate picked for each task."""

    name: str
    kind: str
    key: str | None
    tasks: list[TaskScore]
    cost: Cost | None = None
    routing: list[RoutingScore] = field(default_factory=list)
    spec: dict[str, Any] | None = None
    chosen: dict[str, str] = field(default_factory=dict)

    def split_means(self) -> dict[str, dict[str, float]]:
        """Per split: each metric's mean over the split's tasks, and the number of tasks (``tasks``)."""
        return split_means(self.tasks)

    def routing_means(self) -> dict[str, float]:
        """Mean routing accuracies over the tasks where they are defined."""
        keys = ("skill", "family", "target_skill", "sequence_skill", "chance_skill", "example_task", "example_skill",
                "example_family", "example_fallback")
        return {k: _mean([getattr(r, k) for r in self.routing if getattr(r, k) is not None]) for k in keys}

    def task(self, name: str) -> TaskScore:
        return next(t for t in self.tasks if t.task == name)


@dataclass
class EvalResults:
    """Every candidate's result on one suite and base model."""

    base_model: str
    candidates: list[CandidateResult]
    settings: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # candidate name -> why (only when asked to go on)

    def __getitem__(self, name: str) -> CandidateResult:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}; have {[c.name for c in self.candidates]}")

    def task_rows(self) -> list[dict[str, Any]]:
        """One flat row per (candidate, task): ready for ``pyarrow.Table.from_pylist`` or a CSV."""
        rows = []
        for c in self.candidates:
            routing = {r.task: r for r in c.routing}
            for t in c.tasks:
                row = {"candidate": c.name, "kind": c.kind, "key": c.key, "task": t.task, "split": t.split,
                       "n": t.n, **t.metrics, "chosen": c.chosen.get(t.task)}
                if t.task in routing:
                    r = asdict(routing[t.task])
                    row.update({f"routing_{k}": v for k, v in r.items() if k not in ("task", "split")})
                rows.append(row)
        return rows

    def summary_rows(self) -> list[dict[str, Any]]:
        """One flat row per candidate: split means, cost, mean routing accuracy."""
        rows = []
        for c in self.candidates:
            row: dict[str, Any] = {"candidate": c.name, "kind": c.kind, "key": c.key}
            for split, means in c.split_means().items():
                row.update({f"{split}_{k}": v for k, v in means.items()})
            if c.cost:
                row.update(asdict(c.cost))
            if c.routing:
                row.update({f"routing_{k}": v for k, v in c.routing_means().items()})
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"base_model": self.base_model, "settings": self.settings, "summary": self.summary_rows(),
                "tasks": self.task_rows(), "candidates": [{"name": c.name, "spec": c.spec} for c in self.candidates]}


def split_means(tasks: Sequence[TaskScore]) -> dict[str, dict[str, float]]:
    """Per split: each metric's mean over the split's tasks (NaN values skipped), and ``tasks``, their count."""
    names = list(dict.fromkeys(name for t in tasks for name in t.metrics))
    out = {}
    for split in SPLITS:
        scores = [t for t in tasks if t.split == split]
        out[split] = {**{name: _mean(t.metrics.get(name, math.nan) for t in scores) for name in names},
                      "tasks": len(scores)}
    return out


def _mean(values: Iterable[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")
