"""``cluster``: group a base model's adapters by the similarity of their updates (MBC), from the catalog."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.clusters import cluster_members, plan_clustering, publish_clusters, similarity_plot
from zoo.settings import load_settings


@flow(name="cluster", log_prints=False)
def cluster_adapters(
    base_model: str,
    k: int | None = None,
    seed: int = 0,
    k_max: int = 12,
    catalog_path: str | None = None,
) -> str:
    """Cluster the fingerprinted adapters of ``base_model`` (``k=None``: by silhouette up to ``k_max``);
    returns the clustering id (an existing one when nothing changed)."""
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    plan = plan_clustering(catalog, base_model, k, seed, k_max)
    if not plan.exists:
        cluster_members(catalog, base_model, plan, similarity_plot(plan.clustering_id))
    publish_clusters(catalog, plan.clustering_id)
    return plan.clustering_id
