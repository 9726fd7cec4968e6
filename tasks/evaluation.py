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
from tasks.candidates import done, spec_from_row
from tasks.progress import StepProgress
from zoo.candidates import CandidateSpec
from zoo.candidates.store import CandidateStore
from zoo.content import content_key
from zoo.eval.results import CandidateResult
from zoo.eval.suite import EvalExample, existing_suite, read_suite
from zoo.settings import load_settings

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
        path = existing_suite(path)
        return cls(path, path.stem, hashlib.sha256(path.read_bytes()).hexdigest()[:16])

    @classmethod
    def from_text(cls, name: str, text: str, folder: Path) -> Suite:
        """The suite ``name`` sent as its JSONL text (to a worker), written under ``folder`` by its hash."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        path = folder / digest / f"{name}.jsonl"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))  # byte for byte: the hash (and the eval keys) must not change
        return cls.of(path)

    def text(self) -> str:
        return self.path.read_bytes().decode("utf-8")

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


def shard_input(candidate: dict[str, Any], suite: Suite, max_examples: int | None) -> dict[str, Any]:
    """What a shard needs of a stored candidate row: its spec as plain JSON, under its stored key, and the
    key its evaluation will have."""
    return {**spec_from_row(candidate).to_json(), "key": candidate["candidate_key"],
            "eval_key": eval_key(candidate["candidate_key"], suite, max_examples)}


@task(name="evaluate shard", tags=["gpu", "evaluate"], retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def evaluate_shard(candidates: Sequence[dict[str, Any]], suite: Suite, base_dir: Path, store: CandidateStore,
                   max_examples: int | None, device: str) -> list[dict[str, Any]]:
    """Score a shard's candidates (``shard_input`` dicts) with one base load (``zoo.eval``); returns one plain
    result per candidate (``status`` ok with the catalog rows, or failed with the reason), each also left in
    the store as soon as it is known. Candidates scored by an earlier hand-out of the shard are not scored again."""
    from zoo.eval import evaluate

    results = {}
    todo = []
    for raw in candidates:
        key = eval_key(raw["key"], suite, max_examples)
        results[key] = store.read_result(key)
        if not done(results[key]):
            todo.append((CandidateSpec.from_json(raw), raw["key"], key))
    by_label = {spec.label: (spec, candidate_key, key) for spec, candidate_key, key in todo}
    progress = StepProgress("evaluate-progress", f"candidates of {candidates[0]['base_model'] if candidates else '-'} "
                            f"scored on {suite.name} (this shard)", len(todo))

    def keep(result: CandidateResult) -> None:
        spec, candidate_key, key = by_label[result.name]
        results[key] = {"status": "ok", "eval_key": key, "candidate_key": candidate_key,
                        **evaluation_rows(key, candidate_key, spec, result, suite, max_examples, device)}
        store.write_result(key, results[key])
        progress.advance()

    ready = []
    for spec, candidate_key, key in todo:
        try:
            store.fetch(spec.artifact)
            ready.append(spec)
        except Exception as err:  # noqa: BLE001  (a missing folder fails this candidate, not the shard)
            results[key] = _failed(key, candidate_key, f"{type(err).__name__}: {err}")
    if ready:
        outcome = evaluate(ready, suite.examples(), base_dir, candidates_dir=store.working_dir,
                           max_examples=max_examples, device=device, oracle=False, on_result=keep, keep_going=True,
                           threads=load_settings().torch_threads)
        for label, reason in outcome.failed.items():
            _, candidate_key, key = by_label[label]
            results[key] = _failed(key, candidate_key, reason)
            store.write_result(key, results[key])
            progress.advance()
    return [results[eval_key(raw["key"], suite, max_examples)] for raw in candidates]


def _failed(key: str, candidate_key: str, reason: str) -> dict[str, Any]:
    return {"status": "failed", "eval_key": key, "candidate_key": candidate_key, "reason": reason}


def evaluation_rows(key: str, candidate_key: str, spec: CandidateSpec, result: CandidateResult, suite: Suite,
                    max_examples: int | None, device: str) -> dict[str, Any]:
    """The catalog rows of one scored candidate, as plain JSON (the orchestrator stamps the time)."""
    means = result.split_means()
    routing = {k: v for k, v in result.routing_means().items() if not math.isnan(v)} if result.routing else None
    by_task = {r.task: r for r in result.routing}
    row = {
        "eval_key": key, "candidate_key": candidate_key, "base_model": spec.base_model,
        "suite_name": suite.name, "suite_hash": suite.hash,
        "settings": {"max_examples": max_examples, "device": device, "scoring": SCORING_VERSION},
        "held_in_tasks": means["held-in"]["tasks"], "held_out_tasks": means["held-out"]["tasks"],
        **({k: v for k, v in asdict(result.cost).items()} if result.cost else {}),
        "routing": routing,
    }
    tasks = [{"eval_key": key, "task": t.task, "split": t.split, "n": t.n,
              "routing_skill": by_task[t.task].skill if t.task in by_task else None,
              "routing_family": by_task[t.task].family if t.task in by_task else None,
              "routing_experts": dict(zip(spec.member_ids, by_task[t.task].expert_share, strict=True))
              if t.task in by_task else None}
             for t in result.tasks]
    metrics = [{"eval_key": key, "task": t.task, "metric": name, "value": _finite(value)}
               for t in result.tasks for name, value in t.metrics.items()]
    return {"row": row, "tasks": tasks, "metrics": metrics}


@task(name="record evaluations", tags=["catalog"], cache_policy=NO_CACHE)
def store_evaluations(catalog_path: Path, results: Sequence[dict[str, Any]]) -> list[str]:
    """Store the scored results of shards (each in its own commit) and the failures with their reasons;
    returns the evaluation keys stored."""
    now = datetime.now(UTC)
    stored = []
    with Catalog.open(catalog_path) as cat:
        for result in results:
            if result["status"] == "ok":
                records.store_evaluation(cat, {**result["row"], "evaluated_at": now}, result["tasks"],
                                         result["metrics"])
                stored.append(result["eval_key"])
            else:
                records.store_failure(cat, {"candidate_key": result["candidate_key"], "step": "evaluate",
                                            "reason": result["reason"], "failed_at": now})
    return stored


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)
