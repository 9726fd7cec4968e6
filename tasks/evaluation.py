"""Prefect tasks of ``evaluate_candidates``: score each built candidate on a task suite, one task run each.

An evaluation is keyed by the candidate, the suite's content and the scoring settings; a candidate
already scored under that key is skipped, so a re-run (or a run killed mid-way and started again)
scores only what is missing, and each result is stored in its own transaction.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from tasks.candidates import spec_from_row
from zoo.content import content_key
from zoo.eval.suite import EvalExample, read_suite

# Bump when scoring changes in a way that makes older results incomparable: they are then re-scored.
SCORING_VERSION = 3  # 2: routing accuracy counts only layers with the task's skill; 3: completions cut at a newline


@dataclass(frozen=True)
class Suite:
    """A task suite file with its content hash; ``name`` is the file's stem (it names the registered model)."""

    path: Path
    name: str
    hash: str

    @classmethod
    def of(cls, path: str | Path) -> Suite:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no task suite at {path}: a JSONL file of prompt, target, task, split")
        return cls(path, path.stem, hashlib.sha256(path.read_bytes()).hexdigest()[:16])

    def examples(self) -> list[EvalExample]:
        return read_suite(self.path)


def eval_key(candidate_key: str, suite: Suite, max_examples: int | None) -> str:
    return content_key({"candidate": candidate_key, "suite": suite.hash, "max_examples": max_examples,
                        "scoring": SCORING_VERSION})


@task(name="candidates to evaluate", cache_policy=NO_CACHE)
def evaluation_candidates(catalog_path: Path, base_model: str, candidate_keys: Sequence[str] | None
                          ) -> list[dict[str, Any]]:
    """The rows of ``candidate_keys`` (default: every candidate of ``base_model`` built by this zoo)."""
    with Catalog.open(catalog_path) as cat:
        every = candidate_keys is None
        if every:
            candidate_keys = cat.query("SELECT candidate_key FROM candidates WHERE base_model = ? ORDER BY created_at, "
                                       "candidate_key", [base_model]).column("candidate_key").to_pylist()
        rows = records.candidates(cat, list(candidate_keys))
    if every:  # candidates built by an older zoo, whose content key has changed since, are not scored
        rows = [r for r in rows if spec_from_row(r).key == r["candidate_key"]]
    return rows


@task(name="plan evaluations", cache_policy=NO_CACHE)
def plan_evaluations(catalog_path: Path, rows: Sequence[dict[str, Any]], suite: Suite, max_examples: int | None
                     ) -> tuple[list[dict[str, Any]], list[str]]:
    """Of the candidate ``rows``, those still to score, and the evaluation keys of all of them (in order)."""
    keys = [eval_key(r["candidate_key"], suite, max_examples) for r in rows]
    with Catalog.open(catalog_path) as cat:
        done = records.present_keys(cat, "evaluations", "eval_key", keys)
    return [r for r, k in zip(rows, keys, strict=True) if k not in done], keys


@task(name="evaluate candidate", tags=["gpu", "evaluate"], retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def evaluate_one(catalog_path: Path, candidates_dir: Path, base_dir: Path, candidate: dict[str, Any], suite: Suite,
                 max_examples: int | None, device: str) -> str:
    """Score one candidate with the harness (``zoo.eval``) and store the result; returns its evaluation key."""
    from zoo.eval import evaluate

    spec = spec_from_row(candidate)
    result = evaluate([spec], suite.examples(), base_dir, candidates_dir=candidates_dir, max_examples=max_examples,
                      device=device, oracle=False).candidates[0]
    key = eval_key(candidate["candidate_key"], suite, max_examples)
    means = result.split_means()
    routing = {k: v for k, v in result.routing_means().items() if not math.isnan(v)} if result.routing else None
    by_task = {r.task: r for r in result.routing}
    row = {
        "eval_key": key, "candidate_key": candidate["candidate_key"], "base_model": candidate["base_model"],
        "suite_name": suite.name, "suite_hash": suite.hash,
        "settings": {"max_examples": max_examples, "device": device, "scoring": SCORING_VERSION},
        "held_in_tasks": means["held-in"]["tasks"], "held_out_tasks": means["held-out"]["tasks"],
        **({k: v for k, v in asdict(result.cost).items()} if result.cost else {}),
        "routing": routing, "evaluated_at": datetime.now(UTC),
    }
    tasks = [{"eval_key": key, "task": t.task, "split": t.split, "n": t.n,
              "routing_skill": by_task[t.task].skill if t.task in by_task else None,
              "routing_family": by_task[t.task].family if t.task in by_task else None,
              "routing_experts": dict(zip(spec.member_ids, by_task[t.task].expert_share, strict=True))
              if t.task in by_task else None}
             for t in result.tasks]
    metrics = [{"eval_key": key, "task": t.task, "metric": name, "value": _finite(value)}
               for t in result.tasks for name, value in t.metrics.items()]
    with Catalog.open(catalog_path) as cat:
        records.store_evaluation(cat, row, tasks, metrics)
    return key


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)
