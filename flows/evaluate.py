"""``evaluate_candidates``: score built candidates on a task suite, one task run per candidate.

Deployed on the ``gpu`` work pool (``infra/prefect.yaml``) so that workers on GPU machines pick it up;
on the embedded default ``recycle`` calls it in process.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.base_models import base_model_folder
from tasks.evaluation import Suite, evaluate_one, plan_evaluations
from tasks.leaderboard import leaderboard_rows, publish_leaderboard
from tasks.progress import StepProgress
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
) -> list[str]:
    """Score ``candidate_keys`` (default: every built candidate of ``base_model``) on the JSONL ``suite``,
    at most ``max_examples`` per task; returns their evaluation keys. Already scored ones are skipped.
    ``device``: ``auto`` picks the GPU of the machine that runs this, if it has one."""
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    task_suite = Suite.of(suite)
    todo, keys = plan_evaluations(catalog, base_model, candidate_keys, task_suite, max_examples)
    progress = StepProgress("evaluate-progress", f"candidates of {base_model} scored on {task_suite.name}", len(todo))
    base_dirs: dict[str, Path] = {}
    for candidate in todo:
        revision = candidate["base_revision"]
        if revision not in base_dirs:
            base_dirs[revision] = base_model_folder(endpoint, base_model, revision)
        evaluate_one.with_options(task_run_name=f"evaluate {candidate['name']}")(
            catalog, settings.candidates_dir, base_dirs[revision], candidate, task_suite, max_examples,
            resolve_device(device))
        progress.advance()
    rows = leaderboard_rows(catalog, base_model, task_suite.hash, keys)
    publish_leaderboard(rows, f"{base_model} on {task_suite.name}")
    return keys
