"""``recycle``: the whole pipeline, from what is on the hub to ``models:/<name>@champion``.

crawl_hub -> fingerprint -> cluster -> build_candidates -> evaluate_candidates -> register_winners, per
base model. Every step is content-addressed, so a run with nothing new on the hub recomputes nothing
and registers nothing. Building (merging, gate training) and evaluation run in process on the embedded
default, or through deployments on the ``gpu`` work pool.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.build_candidates import build_candidates
from flows.cluster import cluster_adapters
from flows.crawl import crawl_hub
from flows.evaluate import evaluate_candidates
from flows.fingerprint import DEFAULT_SKETCH_SIZE, fingerprint
from flows.register import register_winners
from tasks.base_models import current_base_revision, recyclable_base_models
from tasks.evaluation import Suite
from zoo.settings import load_settings


@flow(name="recycle", log_prints=False)
def recycle(
    suite: str | None = None,
    base_models: list[str] | None = None,
    endpoint: str | None = None,
    crawl: bool = True,
    k: int | None = None,
    candidates: dict[str, Any] | None = None,
    max_examples: int | None = None,
    screen: int | None = None,
    device: str = "auto",
    build_deployment: str | None = None,
    evaluate_deployment: str | None = None,
    sketch_size: int = DEFAULT_SKETCH_SIZE,
    seed: int = 0,
    tracking_uri: str | None = None,
    catalog_path: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Recycle the adapters of ``base_models`` (default: every base model with 2+ usable adapters) and
    register the best candidate per base model on ``suite`` (default: ``ZOO_HOME/suites/default.jsonl``).

    ``candidates``: which candidates to build (``zoo.candidates.CandidateChoices`` as a dict).
    ``build_deployment`` / ``evaluate_deployment``: run the shards of those steps through these deployments
    (``build-shard/build-candidates-gpu``, ``evaluate-shard/evaluate-gpu``: every worker of the ``gpu`` pool
    takes shards) rather than in process; this flow alone writes the catalog. ``screen``: evaluate in full
    only the best ``screen`` candidates of a cheap first pass on held-in data (``evaluate_candidates``).
    ``device``: ``auto`` picks the GPU of the machine doing the work. Returns, per base model, what
    ``register_winners`` did; a base model that fails does not stop the others (the run fails at the end).
    """
    settings = load_settings()
    catalog = str(catalog_path or settings.catalog_path)
    suite = str(suite or settings.suites_dir / "default.jsonl")
    Suite.of(suite)  # a missing suite fails now, not after the crawl and the builds
    if crawl:
        crawl_hub(endpoint=endpoint, base_models=base_models, catalog_path=catalog)
    if not base_models:
        base_models = recyclable_base_models(catalog)

    def recycle_one(base_model: str) -> dict[str, Any]:
        """The steps after the crawl, for one base model; returns what ``register_winners`` did."""
        fingerprint(base_model, endpoint=endpoint, catalog_path=catalog, sketch_size=sketch_size, seed=seed)
        clustering_id = cluster_adapters(base_model, k=k, seed=seed, catalog_path=catalog)
        keys = build_candidates(base_model, clustering_id, options=candidates, endpoint=endpoint,
                                base_revision=current_base_revision(endpoint, base_model), catalog_path=catalog,
                                device=device, shard_deployment=build_deployment)
        eval_keys = evaluate_candidates(base_model, suite, candidate_keys=keys, max_examples=max_examples,
                                        device=device, endpoint=endpoint, catalog_path=catalog,
                                        shard_deployment=evaluate_deployment, screen=screen)
        return register_winners(base_model, suite, eval_keys=eval_keys, tracking_uri=tracking_uri,
                                endpoint=endpoint, catalog_path=catalog)

    outcome: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for base_model in base_models:
        try:
            outcome[base_model] = recycle_one(base_model)
        except Exception as err:  # noqa: BLE001  (one base model's failure does not stop the others)
            failed[base_model] = f"{type(err).__name__}: {err}"
    if failed:
        raise RuntimeError(f"recycling failed for {len(failed)} of {len(base_models)} base models: {failed}")
    return outcome

