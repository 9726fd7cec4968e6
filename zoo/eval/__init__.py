"""Evaluation harness: score candidates (base, experts, merges, routed libraries) on one task suite.

Every candidate is applied to one loaded base model, scored per task (every registered metric: exact
match of greedy generation, mean target NLL, ...), averaged per split (held-in / held-out), costed
(seconds, peak memory) and, when it routes, checked against the suite's skill labels. Results are plain dataclasses that turn into rows.
"""

from zoo.eval.candidates import CANDIDATE_KINDS, CandidateKind, CandidateSpec
from zoo.eval.experts import ExpertPool, PoolExpert, demo_zoo_experts
from zoo.eval.harness import evaluate
from zoo.eval.leaderboard import leaderboard_table, task_table
from zoo.eval.plan import plan_candidates
from zoo.eval.ranking import best_per_task, rank_results
from zoo.eval.results import CandidateResult, EvalResults, TaskScore
from zoo.eval.suite import EvalExample, read_suite, write_suite

__all__ = [
    "CANDIDATE_KINDS",
    "CandidateKind",
    "CandidateResult",
    "CandidateSpec",
    "EvalExample",
    "EvalResults",
    "ExpertPool",
    "PoolExpert",
    "TaskScore",
    "best_per_task",
    "demo_zoo_experts",
    "evaluate",
    "leaderboard_table",
    "plan_candidates",
    "rank_results",
    "read_suite",
    "task_table",
    "write_suite",
]
