"""Evaluation harness: score candidates (base, experts, merges, routed libraries) on one task suite.

Every candidate is applied to one loaded base model, scored per task (every registered metric: exact
match of greedy generation, mean target NLL, ...), averaged per split (held-in / held-out), costed
(seconds, peak memory) and, when it routes, checked against the suite's skill labels. Results are plain
dataclasses that turn into rows.

The names below are imported on first use (PEP 562): the text handling in ``zoo.eval.text`` is used by
layers the harness itself builds on (gate training, routers' fits), which must not import the harness.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "evaluate": "zoo.eval.harness",
    "leaderboard_table": "zoo.eval.leaderboard",
    "task_table": "zoo.eval.leaderboard",
    "best_per_task": "zoo.eval.ranking",
    "rank_results": "zoo.eval.ranking",
    "CandidateResult": "zoo.eval.results",
    "EvalResults": "zoo.eval.results",
    "TaskScore": "zoo.eval.results",
    "EvalExample": "zoo.eval.suite",
    "read_suite": "zoo.eval.suite",
    "write_suite": "zoo.eval.suite",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.eval' has no attribute {name!r}")
