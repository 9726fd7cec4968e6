"""``build_candidates``: merged adapters and routed libraries of one clustering, each built once.

Baselines (the base model, each single expert, the uniform merge of everything) are built beside the
per-cluster merges (configured methods) and the Arrow and PHATGOOSE libraries per cluster and over all.
Merging and gate training want a GPU: the deployment ``build-candidates-gpu`` runs this on the ``gpu`` pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from catalog import recycle_records as records
from tasks.candidates import BuildContext, build_candidate, built_keys, choices_from_json, plan_candidates
from tasks.catalog_turn import open_catalog
from tasks.hub import hub_from_settings
from tasks.progress import StepProgress
from zoo.devices import resolve_device
from zoo.settings import load_settings


@flow(name="build-candidates", log_prints=False)
def build_candidates(
    base_model: str,
    clustering_id: str,
    options: dict[str, Any] | None = None,
    base_revision: str | None = None,
    endpoint: str | None = None,
    catalog_path: str | None = None,
    device: str = "auto",
) -> list[str]:
    """Build every candidate of ``clustering_id`` not built yet; returns all its candidate keys, in order.

    ``options``: see ``tasks.candidates.CandidateChoices`` (merge methods, routers, their settings).
    ``base_revision``: the base model's commit (default: the hub's current one). ``device``: ``auto`` picks
    the GPU of the machine that runs this, if it has one.
    """
    from zoo.hub.snapshots import current_revision

    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    hub = hub_from_settings(endpoint)
    revision = base_revision or current_revision(hub, base_model)
    planned = plan_candidates(catalog, base_model, revision, clustering_id, choices_from_json(options))
    done = built_keys(catalog, [c.key for c in planned])
    todo = [c for c in planned if c.key not in done]
    with open_catalog(catalog) as cat:
        datasets = {a["repo_id"]: list(a["datasets"] or []) for a in records.recyclable_adapters(cat, base_model)}
    context = BuildContext(hub, base_model, revision, datasets, resolve_device(device))
    progress = StepProgress("build-progress", f"candidates of {base_model} built", len(todo))
    for candidate in todo:
        build_candidate.with_options(task_run_name=f"build {candidate.name}")(
            catalog, settings.candidates_dir, candidate, context)
        progress.advance()
    return [c.key for c in planned]
