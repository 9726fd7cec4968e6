"""``build_candidates``: merged adapters and routed libraries of one clustering, each built once.

Baselines (the base model, each single expert, the uniform merge of everything) are built beside the
per-cluster merges (configured methods) and the libraries of every configured router, per cluster and over
all (``zoo.candidates`` plans them). Merging and fitting routers want a GPU: the candidates still to build
are cut into shards (``flows.shards``), run in process or, with ``shard_deployment``
(``build-shard/build-candidates-gpu``), by the workers of the ``gpu`` pool, all at once. The folders go to
the candidate store; this flow alone records them in the catalog.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow

from flows.shards import build_candidates_shard, candidate_store, gathered, run_shards, shards_of
from tasks.base_models import current_base_revision
from tasks.candidates import (
    build_result_name,
    built_keys,
    expert_datasets,
    plan_clustering_candidates,
    store_candidates,
)
from zoo.candidates.store import CandidateStore
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
    shard_deployment: str | None = None,
) -> list[str]:
    """Build every candidate of ``clustering_id`` not built yet; returns the keys of its candidates that are
    built, in order (one that failed is recorded in ``candidate_failures`` with the reason, and left out).

    ``options``: see ``zoo.candidates.CandidateChoices`` (merge methods, routers, their settings).
    ``base_revision``: the base model's commit (default: the hub's current one). ``device``: ``auto``
    picks the GPU of the machine that runs a shard, if it has one. ``shard_deployment``: run the shards
    through this deployment of ``build-shard`` rather than in process.
    """
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    revision = base_revision or current_base_revision(endpoint, base_model)
    planned = plan_clustering_candidates(catalog, base_model, revision, clustering_id, options)
    done = built_keys(catalog, [spec.key for spec in planned])
    todo = [spec for spec in planned if spec.key not in done]
    failed: set[str] = set()
    if todo:
        common = {"base_model": base_model, "base_revision": revision, "datasets": expert_datasets(catalog, base_model),
                  "store_url": settings.candidate_store, "device": device, "endpoint": endpoint}
        shards = [{**common, "specs": [spec.to_json() for spec in shard]}
                  for shard in shards_of(todo, settings.shard_size)]
        store = candidate_store(settings.candidate_store)
        results = run_shards(build_candidates_shard, shards, shard_deployment, store, partial(_gather, store),
                             f"building candidates of {base_model}")
        failed = {spec.key for spec in todo} - set(store_candidates(catalog, results))
    return [spec.key for spec in planned if spec.key not in failed]


def _gather(store: CandidateStore, shard: dict[str, Any], reason: str) -> list[dict[str, Any]]:
    return gathered(store, [(build_result_name(s["key"]), {"candidate_key": s["key"]}) for s in shard["specs"]], reason)
