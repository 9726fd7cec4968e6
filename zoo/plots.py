"""PNG charts of a run: adapter similarity by cluster, where routers send each task, the leaderboard.

Figures are drawn with matplotlib's object API on the Agg canvas, never through ``pyplot``: no global
figure state and no GUI backend, so flows can draw from worker threads on headless machines.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from zoo.eval.ranking import RANK_METRIC, TIE_METRIC, rank, score_of
from zoo.eval.suite import HELD_OUT

HIGHLIGHT = "tab:orange"
PLAIN = "tab:blue"


def cluster_order(labels: Sequence[int] | None, n: int) -> tuple[list[int], list[int]]:
    """Member order that puts each cluster's members together (clusters by label, members keep their
    order), and the positions in that order where a new cluster starts (the lines of the heatmap)."""
    if labels is None:
        return list(range(n)), []
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} members")
    order = sorted(range(n), key=lambda i: labels[i])
    starts = [pos for pos in range(1, n) if labels[order[pos]] != labels[order[pos - 1]]]
    return order, starts


def similarity_heatmap(matrix: np.ndarray, names: Sequence[str], labels: Sequence[int] | None,
                       path: str | Path) -> Path:
    """Cosine similarities of the members, reordered by cluster, with lines between clusters."""
    matrix = np.asarray(matrix, dtype=float)
    n = len(names)
    if matrix.shape != (n, n):
        raise ValueError(f"a {matrix.shape} matrix for {n} names; expected ({n}, {n})")
    order, starts = cluster_order(labels, n)
    size = max(4.0, 0.35 * n + 2.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(matrix[np.ix_(order, order)], cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ticks = [_tick_label(names[i], labels[i] if labels is not None else None) for i in order]
    ax.set_xticks(range(n), ticks, rotation=90, fontsize=7)
    ax.set_yticks(range(n), ticks, fontsize=7)
    for start in starts:
        ax.axhline(start - 0.5, color="black", linewidth=1.2)
        ax.axvline(start - 0.5, color="black", linewidth=1.2)
    ax.set_title("adapter similarity by cluster" if labels is not None else "adapter similarity")
    return _save(fig, path)


def _tick_label(name: str, label: int | None) -> str:
    return name if label is None else f"[{label}] {name}"


def routing_histogram(task: str, counts: Mapping[str, float], path: str | Path,
                      highlight: Collection[str] = ()) -> Path:
    """How often each expert was chosen on one task, as shares; the experts in ``highlight`` (those of
    the task's skill) stand out, so a router that sends the task elsewhere shows at a glance."""
    fig = _figure(max(4.0, 0.5 * len(counts) + 2.0), 3.5)
    _draw_routing(fig.add_subplot(), task, counts, set(highlight))
    return _save(fig, path)


def routing_histograms(per_task: Mapping[str, Mapping[str, float]], path: str | Path,
                       highlight: Mapping[str, Collection[str]] | None = None, columns: int = 3) -> Path:
    """:func:`routing_histogram` for every task, as one grid (``highlight`` per task)."""
    if not per_task:
        raise ValueError("no tasks to plot")
    highlight = highlight or {}
    columns = max(1, min(columns, len(per_task)))
    rows = math.ceil(len(per_task) / columns)
    widest = max(len(counts) for counts in per_task.values())
    fig = _figure(columns * max(4.0, 0.5 * widest + 2.0), rows * 3.5)
    for i, (task, counts) in enumerate(per_task.items()):
        _draw_routing(fig.add_subplot(rows, columns, i + 1), task, counts, set(highlight.get(task, ())))
    return _save(fig, path)


def _draw_routing(ax: Axes, task: str, counts: Mapping[str, float], highlight: set[str]) -> None:
    experts = list(counts)
    total = sum(counts.values())
    shares = [counts[e] / total if total > 0 else 0.0 for e in experts]
    colors = [HIGHLIGHT if e in highlight else PLAIN for e in experts]
    ax.bar(range(len(experts)), shares, color=colors)
    ax.set_xticks(range(len(experts)), experts, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("share chosen")
    ax.set_title(task, fontsize=9)


def leaderboard_chart(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Held-in and held-out exact match per candidate (rows as ``EvalResults.summary_rows()`` gives them),
    ranked by ``zoo.eval.ranking`` (held-out), best on top; a candidate without a score on a split has no
    bar there."""
    if not rows:
        raise ValueError("no candidates to plot")
    best_first = rank(rows, lambda r: score_of({m: r.get(f"{HELD_OUT}_{m}") for m in (RANK_METRIC, TIE_METRIC)}),
                      lambda r: str(r["candidate"]))
    ranked = best_first[::-1]  # barh draws the first row at the bottom
    names = [str(r["candidate"]) for r in ranked]
    y = np.arange(len(ranked))
    height = 0.4
    fig = _figure(7.0, max(3.0, 0.45 * len(ranked) + 1.5))
    ax = fig.add_subplot()
    for offset, split, color in ((height / 2, "held-in", "tab:gray"), (-height / 2, "held-out", "tab:green")):
        values = [_or_nan(r.get(f"{split}_exact_match")) for r in ranked]
        ax.barh(y + offset, values, height=height, color=color, label=split)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("exact match")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_title("leaderboard (ranked by held-out)")
    return _save(fig, path)


def _or_nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
