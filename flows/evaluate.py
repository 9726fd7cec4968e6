"""``evaluate_candidates``: score built candidates on a task suite, one task run per candidate.

Deployed on the ``gpu`` work pool (``infra/prefect.yaml``) so that workers on GPU machines pick it up;
on the embedded default ``recycle`` calls it in process.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.base_models import base_model_folder
from tasks.evaluation import Suite, evaluate_one, evaluation_candidates, plan_evaluations
from tasks.leaderboard import leaderboard_rows, publish_leaderboard
from tasks.progress import StepProgress
from tasks.screening import screen_candidates, screened_survivors
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
    screen: int | None = None,
    screen_per_task: int = 4,
) -> list[str]:
    """Score ``candidate_keys`` (default: every built candidate of ``base_model``) on the JSONL ``suite``,
    at most ``max_examples`` per task; returns their evaluation keys. Already scored ones are skipped.
    ``device``: ``auto`` picks the GPU of the machine that runs this, if it has one. ``screen``: successive
    halving (``zoo.eval.screening``): when there are more candidates than that, all are first scored on the
    NLL of ``screen_per_task`` examples of each held-in task and only the best ``screen`` (plus a reference
    row per kind, the base and the uniform merge) are evaluated in full; the others are listed as screened
    out."""
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    task_suite = Suite.of(suite)
    rows = evaluation_candidates(catalog, base_model, candidate_keys)
    base_dirs: dict[str, Path] = {}

    def base_dir(revision: str) -> Path:
        if revision not in base_dirs:
            base_dirs[revision] = base_model_folder(endpoint, base_model, revision)
        return base_dirs[revision]

    if screen is not None and len(rows) > screen:
        for revision in dict.fromkeys(r["base_revision"] for r in rows):
            screen_candidates(catalog, settings.candidates_dir, base_dir(revision),
                              [r for r in rows if r["base_revision"] == revision], task_suite, screen_per_task,
                              resolve_device(device))
        rows = screened_survivors(catalog, rows, task_suite, screen_per_task, screen)
    todo, keys = plan_evaluations(catalog, rows, task_suite, max_examples)
    progress = StepProgress("evaluate-progress", f"candidates of {base_model} scored on {task_suite.name}", len(todo))
    for candidate in todo:
        evaluate_one.with_options(task_run_name=f"evaluate {candidate['name']}")(
            catalog, settings.candidates_dir, base_dir(candidate["base_revision"]), candidate, task_suite,
            max_examples, resolve_device(device))
        progress.advance()
    rows = leaderboard_rows(catalog, base_model, task_suite.hash, keys)
    publish_leaderboard(rows, f"{base_model} on {task_suite.name}")
    return keys
