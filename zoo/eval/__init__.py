"""Evaluation harness: score candidates (base, experts, merges, routed libraries) on one task suite.

Every candidate is applied to one loaded base model, scored per task (exact match of greedy generation,
mean target NLL), averaged per split (held-in / held-out), costed (seconds, peak memory) and, when it
routes, checked against the suite's skill labels. Results are plain dataclasses that turn into rows.
"""

from zoo.eval.harness import evaluate
from zoo.eval.leaderboard import leaderboard_table, task_table
from zoo.eval.results import CandidateResult, EvalResults, TaskScore, best_per_task
from zoo.eval.suite import EvalExample, demo_zoo_suite, export_demo_zoo_suite, read_suite, write_suite

__all__ = [
    "CandidateResult",
    "EvalExample",
    "EvalResults",
    "TaskScore",
    "best_per_task",
    "demo_zoo_suite",
    "evaluate",
    "export_demo_zoo_suite",
    "leaderboard_table",
    "read_suite",
    "task_table",
    "write_suite",
]
