"""``register_winners``: log every evaluated candidate to MLflow and crown the best one if it beats the champion.

The best one is the leaderboard's rank 1 (``zoo.eval.ranking``, the rule the registry compares by). Runs
are found again by their evaluation key and a version is created only for a strictly better
candidate, so re-running with nothing new logs nothing and registers nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.shards import candidate_store
from tasks.base_models import base_model_folder
from tasks.evaluation import Suite
from tasks.leaderboard import leaderboard_rows, publish_leaderboard
from tasks.progress import StepProgress
from tasks.registration import candidate_record, log_evaluation, register_best, stored_evaluations
from tasks.registry import CandidateRecord, registered_model_name
from zoo.settings import MLFLOW_UI_PORT, load_settings

SPLIT_KEYS = {"held-in": "held_in", "held-out": "held_out"}  # chart column prefix -> leaderboard row key


@flow(name="register-winners", log_prints=False)
def register_winners(
    base_model: str,
    suite: str,
    eval_keys: list[str] | None = None,
    tracking_uri: str | None = None,
    endpoint: str | None = None,
    catalog_path: str | None = None,
) -> dict[str, Any]:
    """Log the evaluations ``eval_keys`` (default: all of ``base_model`` on ``suite``) and register the best.

    Returns the registered model's name, the best candidate and what the registry did with it.
    """
    from zoo.plots import leaderboard_chart

    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    tracking_uri = tracking_uri or settings.mlflow_uri
    task_suite = Suite.of(suite)
    board = leaderboard_rows(catalog, base_model, task_suite.hash, eval_keys)
    evaluations = stored_evaluations(catalog, [r["eval_key"] for r in board if r["rank"] is not None])
    if not evaluations:
        raise ValueError(f"no evaluations of {base_model} on {task_suite.name}: run evaluate_candidates first")
    chart = leaderboard_chart(_chart_rows([r for r in board if not r.get("screened_out")]), settings.home / "plots" / f"leaderboard-{task_suite.hash}.png")
    base_dirs: dict[str, Path] = {}
    run_ids: dict[str, str] = {}
    logged: dict[str, CandidateRecord] = {}
    progress = StepProgress("register-progress", f"candidate runs of {base_model} logged", len(evaluations))
    for evaluation in evaluations:
        revision = evaluation["base_revision"]
        if revision not in base_dirs:
            base_dirs[revision] = base_model_folder(endpoint, base_model, revision)
        key = evaluation["eval_key"]
        logged[key] = candidate_record(catalog, candidate_store(), base_dirs[revision], evaluation, [chart])
        run_ids[key] = log_evaluation.with_options(task_run_name=f"log {evaluation['name']}")(
            catalog, tracking_uri, evaluation, logged[key])
        progress.advance()
    best = evaluations[0]  # the board's order: rank 1 first
    model_name = registered_model_name(base_model, task_suite.name)
    outcome = register_best(catalog, tracking_uri, model_name, best, run_ids[best["eval_key"]],
                            logged[best["eval_key"]])
    links = {key: f"{_ui_base(tracking_uri)}#/experiments/-/runs/{run_id}" for key, run_id in run_ids.items()}
    publish_leaderboard(board, f"{base_model} on {task_suite.name}", links)
    return {"model_name": model_name, "best": best["name"], "best_eval_key": best["eval_key"],
            "registered": outcome.registered, "version": outcome.version,
            "champion_version": outcome.champion_version, "reason": outcome.reason}


def _chart_rows(board: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"candidate": r["candidate"], **{f"{split}_{metric}": value for split, column in SPLIT_KEYS.items()
                                             for metric, value in r[column].items()}} for r in board]


def _ui_base(tracking_uri: str) -> str:
    """A tracking server's own URL (credentials dropped); for an embedded store, where ``zoo ui`` serves it."""
    from urllib.parse import urlsplit, urlunsplit

    url = urlsplit(tracking_uri)
    if url.scheme not in ("http", "https"):
        return f"http://127.0.0.1:{MLFLOW_UI_PORT}/"
    return urlunsplit((url.scheme, url.hostname + (f":{url.port}" if url.port else ""), url.path.rstrip("/") + "/",
                       "", ""))
