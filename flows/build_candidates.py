"""``build_candidates``: merged adapters and routed libraries of one clustering, each built once.

Baselines (the base model, each single expert, the uniform merge of everything) are built beside the
per-cluster merges (configured methods) and the libraries of every configured router, per cluster and over
all (``zoo.candidates`` plans them). Merging and fitting routers want a GPU: the deployment
``build-candidates-gpu`` runs this on the ``gpu`` pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from tasks.base_models import base_model_folder, current_base_revision
from tasks.candidates import build_shard, built_keys, expert_datasets, plan_clustering_candidates, store_candidates
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

    ``options``: see ``zoo.candidates.CandidateChoices`` (merge methods, routers, their settings).
    ``base_revision``: the base model's commit (default: the hub's current one). ``device``: ``auto``
    picks the GPU of the machine that runs this, if it has one.
    """
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    revision = base_revision or current_base_revision(endpoint, base_model)
    planned = plan_clustering_candidates(catalog, base_model, revision, clustering_id, options)
    done = built_keys(catalog, [spec.key for spec in planned])
    todo = [spec for spec in planned if spec.key not in done]
    if todo:
        rows = build_shard(todo, base_model_folder(endpoint, base_model, revision), settings.candidates_dir,
                           expert_datasets(catalog, base_model), resolve_device(device), endpoint)
        store_candidates(catalog, rows)
    return [spec.key for spec in planned]
