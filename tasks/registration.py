"""Prefect tasks of ``register_winners``: one MLflow run per evaluated candidate, then the best one is
registered if it beats the champion (``tasks.registry``), and what happened is recorded in the catalog.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from tasks.clusters import similarity_plot
from tasks.registry import (
    CandidateRecord,
    Registration,
    champion,
    ensure_model,
    is_better,
    log_candidate,
    register_if_better,
)
from tasks.turns import registry_turn
from zoo.candidates.store import CandidateStore
from zoo.eval.ranking import Score, score_of
from zoo.eval.suite import HELD_OUT
from zoo.plots import routing_histograms


def score(evaluation: dict[str, Any]) -> Score:
    """The ranked pair (held-out mean exact match, NLL) of a stored evaluation (``records.evaluations``)."""
    return score_of(evaluation["means"].get(HELD_OUT, {}))


@task(name="read evaluations", cache_policy=NO_CACHE)
def stored_evaluations(catalog_path: Path, eval_keys: list[str]) -> list[dict[str, Any]]:
    """The stored evaluations ``eval_keys`` with their candidates and split means, in that order."""
    with Catalog.open(catalog_path) as cat:
        return records.evaluations(cat, eval_keys)


def candidate_record(catalog_path: Path, store: CandidateStore, base_dir: Path, evaluation: dict[str, Any],
                     extra_plots: list[Path]) -> CandidateRecord:
    """What the MLflow run of one stored evaluation records: metrics per split and task, cost, plots. The
    candidate's folder is fetched from the candidate store when that is remote."""
    store.fetch(evaluation["artifact"])
    candidates_dir = store.working_dir
    with Catalog.open(catalog_path) as cat:
        tasks = records.evaluation_tasks(cat, evaluation["eval_key"])
    metrics = {f"{split}_{metric}": value
               for split, means in evaluation["means"].items() for metric, value in means.items()}
    metrics.update({k: evaluation[k] for k in ("build_s", "eval_s", "peak_mb")})
    for t in tasks:
        metrics.update({f"{metric}/{t['task']}": value for metric, value in t["metrics"].items()})
    plots = list(extra_plots)
    routed = {t["task"]: json.loads(t["routing_experts"]) for t in tasks if t["routing_experts"]}
    if routed:
        trained_on = _member_tasks(candidates_dir / evaluation["artifact"])
        plots.append(routing_histograms(
            routed, candidates_dir / evaluation["candidate_key"] / "routing.png",
            highlight={task: {m for m, t in trained_on.items() if t == task} for task in routed},
        ))
    if evaluation.get("clustering_id"):
        heatmap = similarity_plot(evaluation["clustering_id"])
        if heatmap.is_file():
            plots.append(heatmap)
    return _record(evaluation, base_dir, candidates_dir, metrics, plots)


@task(name="log candidate run", tags=["mlflow"], retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def log_evaluation(catalog_path: Path, tracking_uri: str, evaluation: dict[str, Any], record: CandidateRecord) -> str:
    """Log one evaluated candidate as an MLflow run (idempotent per evaluation key); returns the run id."""
    run_id = log_candidate(tracking_uri, evaluation["base_model"], record, with_model=False)
    if evaluation.get("mlflow_run_id") != run_id:
        with Catalog.open(catalog_path) as cat:
            records.set_mlflow_run(cat, evaluation["eval_key"], run_id)
    return run_id


def _record(evaluation: dict[str, Any], base_dir: Path, candidates_dir: Path, metrics: dict[str, Any],
            plots: list[Path]) -> CandidateRecord:
    members = [m.rsplit("@", 1) for m in json.loads(evaluation["members"])]
    return CandidateRecord(
        key=evaluation["candidate_key"], eval_key=evaluation["eval_key"], name=evaluation["name"],
        kind=evaluation["kind"], base_model_dir=base_dir, suite_name=evaluation["suite_name"],
        suite_hash=evaluation["suite_hash"], method=evaluation["method"], members=[r for r, _ in members],
        member_shas=dict(members), settings=json.loads(evaluation["candidate_settings"]),
        metrics={k: v for k, v in metrics.items() if v is not None},
        artifact_dir=candidates_dir / evaluation["artifact"] if evaluation["artifact"] else None, plots=plots,
    )


def _member_tasks(library: Path) -> dict[str, str | None]:
    """Each library member's training task, from the labels its manifest carries (highlighted in the plot)."""
    members = json.loads((library / "manifest.json").read_text(encoding="utf-8"))["members"]
    return {m["name"]: (m.get("labels") or {}).get("task") for m in members}


@task(name="register if better", tags=["mlflow"], retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def register_best(catalog_path: Path, tracking_uri: str, model_name: str, best: dict[str, Any],
                  run_id: str, record: CandidateRecord) -> Registration:
    """Register the best candidate if it beats the champion, and record a new registration in the catalog.

    Only a candidate about to be registered gets its pyfunc model logged (it carries the base model)."""
    current = champion(tracking_uri, model_name)
    if current is None or is_better(score(best), current.score):
        ensure_model(tracking_uri, run_id, record)
    outcome = register_if_better(tracking_uri, model_name, run_id, score(best),
                                 serialised=partial(registry_turn, model_name))
    if outcome.registered:
        with Catalog.open(catalog_path) as cat:
            records.store_registration(cat, {
                "model_name": model_name, "version": int(outcome.version), "eval_key": best["eval_key"],
                "candidate_key": best["candidate_key"], "mlflow_run_id": run_id,
                "held_out_exact_match": _finite(score(best)[0]), "held_out_nll": _finite(score(best)[1]),
                "registered_at": datetime.now(UTC)})
    return outcome


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x
