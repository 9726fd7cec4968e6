"""The leaderboard as ``rich`` tables: one row per candidate (split means, cost, routing), and per task.

Rows are ordered by ``zoo.eval.ranking`` (the rule a champion is chosen by); every metric the results
carry gets a held-in and a held-out column, so a new metric shows up here without an edit.
"""

from __future__ import annotations

import math

from rich.table import Table

from zoo.eval.ranking import RANK_METRIC, rank_results
from zoo.eval.results import EvalResults
from zoo.eval.suite import SPLITS


def leaderboard_table(results: EvalResults) -> Table:
    """Candidates best first, with each metric's split means, routing accuracy and cost."""
    table = Table(title=f"Leaderboard on {results.settings.get('tasks', '?')} tasks, "
                        f"{results.settings.get('examples', '?')} examples ({results.base_model})")
    metrics = _metric_names(results)
    columns = ["#", "candidate", "kind", *(f"{split} {m}" for m in metrics for split in SPLITS),
               "route skill", "route family", "route skill/ex", "build s", "eval s", "peak MB"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("candidate", "kind") else "right",
                         no_wrap=column == "candidate")
    for place, c in enumerate(rank_results(results.candidates), start=1):
        means, routing = c.split_means(), c.routing_means() if c.routing else {}
        cost = c.cost
        table.add_row(
            str(place), c.name, c.kind,
            *(_fmt(means[split].get(m)) for m in metrics for split in SPLITS),
            _fmt(routing.get("skill")), _fmt(routing.get("family")), _fmt(routing.get("example_skill")),
            _fmt(cost.build_s, 1) if cost else "", _fmt(cost.eval_s, 1) if cost else "",
            _fmt(cost.peak_mb, 0) if cost else "",
        )
    return table


def task_table(results: EvalResults, metric: str = RANK_METRIC) -> Table:
    """Per task (rows) and candidate (columns), the chosen ``metric``."""
    table = Table(title=f"{metric} per task")
    table.add_column("task")
    table.add_column("split")
    for c in results.candidates:
        table.add_column(c.name, justify="right")
    for score in results.candidates[0].tasks:
        table.add_row(score.task, score.split,
                      *(_fmt(c.task(score.task).metrics.get(metric)) for c in results.candidates))
    return table


def _metric_names(results: EvalResults) -> list[str]:
    return list(dict.fromkeys(m for c in results.candidates for t in c.tasks for m in t.metrics))


def _fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.{digits}f}"
