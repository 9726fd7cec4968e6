"""The leaderboard as ``rich`` tables: one row per candidate (split means, cost, routing), and per task."""

from __future__ import annotations

import math

from rich.table import Table

from zoo.eval.results import EvalResults
from zoo.eval.suite import HELD_IN, HELD_OUT


def leaderboard_table(results: EvalResults) -> Table:
    """Candidates ranked by held-out exact match (then held-out NLL): the rule a champion is chosen by."""
    table = Table(title=f"Leaderboard on {results.settings.get('tasks', '?')} tasks, "
                        f"{results.settings.get('examples', '?')} examples ({results.base_model})")
    for column in ("#", "candidate", "kind", "held-in EM", "held-in NLL", "held-out EM", "held-out NLL",
                   "route skill", "route family", "build s", "eval s", "peak MB"):
        table.add_column(column, justify="left" if column in ("candidate", "kind") else "right",
                         no_wrap=column == "candidate")

    def rank(c):
        means = c.split_means()[HELD_OUT]
        return (-_num(means["exact_match"], -1.0), _num(means["nll"], math.inf))

    for place, c in enumerate(sorted(results.candidates, key=rank), start=1):
        means, routing = c.split_means(), c.routing_means() if c.routing else {}
        cost = c.cost
        table.add_row(
            str(place), c.name, c.kind,
            _fmt(means[HELD_IN]["exact_match"]), _fmt(means[HELD_IN]["nll"]),
            _fmt(means[HELD_OUT]["exact_match"]), _fmt(means[HELD_OUT]["nll"]),
            _fmt(routing.get("skill")), _fmt(routing.get("family")),
            _fmt(cost.build_s, 1) if cost else "", _fmt(cost.eval_s, 1) if cost else "",
            _fmt(cost.peak_mb, 0) if cost else "",
        )
    return table


def task_table(results: EvalResults, metric: str = "exact_match") -> Table:
    """Per task (rows) and candidate (columns), the chosen ``metric``."""
    table = Table(title=f"{metric} per task")
    table.add_column("task")
    table.add_column("split")
    for c in results.candidates:
        table.add_column(c.name, justify="right")
    for score in results.candidates[0].tasks:
        table.add_row(score.task, score.split,
                      *(_fmt(getattr(c.task(score.task), metric)) for c in results.candidates))
    return table


def _num(x: float, nan: float) -> float:
    return nan if x is None or math.isnan(x) else x


def _fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None or math.isnan(x) else f"{x:.{digits}f}"
