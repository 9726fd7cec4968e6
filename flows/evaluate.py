"""``evaluate_candidates``: score built candidates on a task suite, a shard of candidates per base load.

The candidates still to score are cut into shards (``flows.shards``) of one base revision each, run in
process or, with ``shard_deployment`` (``evaluate-shard/evaluate-gpu``, on the ``gpu`` work pool of
``infra/prefect.yaml``), by every worker of the pool at once. Shards return plain rows; this flow alone
stores them, then ranks the leaderboard. With ``screen``, a cheap first pass (``zoo.eval.screening``: NLL only,
a few held-in examples per candidate, in this process) decides which candidates are worth the shards.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow

from flows.shards import candidate_store, evaluate_candidates_shard, gathered, run_shards, shards_of
from tasks.base_models import base_model_folder
from tasks.evaluation import Suite, evaluation_candidates, plan_evaluations, shard_input, store_evaluations
from tasks.leaderboard import leaderboard_rows, publish_leaderboard
from tasks.screening import screen_candidates, screened_survivors
from zoo.candidates.store import CandidateStore
from zoo.devices import resolve_device
from zoo.settings import load_settings


@flow(name="evaluate-candidates", log_prints=False)
def evaluate_candidates(
    base_model: str,
    suite: str,
    candidate_keys: list[str] | None = None,
    max_examples: int | None = None,
    device: str = "auto",
    endpoint: str | None = None,
    catalog_path: str | None = None,
    shard_deployment: str | None = None,
    screen: int | None = None,
    screen_per_task: int = 4,
) -> list[str]:
    """Score ``candidate_keys`` (default: every built candidate of ``base_model``) on the JSONL ``suite``,
    at most ``max_examples`` per task; returns the evaluation keys of those scored (now or before); one
    that failed is recorded in ``candidate_failures`` and left out. ``device``: ``auto`` picks the GPU of
    the machine that runs a shard, if it has one. ``shard_deployment``: run the shards through this
    deployment of ``evaluate-shard`` rather than in process. ``screen``: successive halving
    (``zoo.eval.screening``): when there are more candidates than that, all are first scored on the NLL of
    ``screen_per_task`` examples of each held-in task and only the best ``screen`` (plus the best of each kind,
    the base and the uniform merge) are evaluated in full; the others are listed as screened out."""
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    task_suite = Suite.of(suite)
    store = candidate_store(settings.candidate_store)
    rows = evaluation_candidates(catalog, base_model, candidate_keys)
    if screen is not None and len(rows) > screen:
        for revision in dict.fromkeys(r["base_revision"] for r in rows):
            screen_candidates(catalog, store, base_model_folder(endpoint, base_model, revision),
                              [r for r in rows if r["base_revision"] == revision], task_suite, screen_per_task,
                              resolve_device(device))
        rows = screened_survivors(catalog, rows, task_suite, screen_per_task, screen)
    todo, keys = plan_evaluations(catalog, rows, task_suite, max_examples)
    common = {"base_model": base_model, "suite_name": task_suite.name, "suite_text": task_suite.text(),
              "max_examples": max_examples, "store_url": settings.candidate_store, "device": device,
              "endpoint": endpoint}
    by_revision: dict[str, list[dict[str, Any]]] = {}
    for candidate in todo:
        by_revision.setdefault(candidate["base_revision"], []).append(shard_input(candidate, task_suite, max_examples))
    shards = [{**common, "base_revision": revision, "candidates": shard}
              for revision, candidates in by_revision.items() for shard in shards_of(candidates, settings.shard_size)]
    results = run_shards(evaluate_candidates_shard, shards, shard_deployment, store, partial(_gather, store),
                         f"evaluating candidates of {base_model}")
    stored = store_evaluations(catalog, results)
    failed = {r["eval_key"] for r in results} - set(stored)
    keys = [key for key in keys if key not in failed]
    rows = leaderboard_rows(catalog, base_model, task_suite.hash, keys)
    publish_leaderboard(rows, f"{base_model} on {task_suite.name}")
    return keys


def _gather(store: CandidateStore, shard: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    return gathered(store, [(c["eval_key"], {"eval_key": c["eval_key"], "candidate_key": c["key"]})
                            for c in shard["candidates"]], reason)
