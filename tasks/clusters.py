"""Prefect tasks of ``cluster``: MBC on the sketches stored by ``fingerprint``, recorded in the catalog.

A clustering is keyed by its members' commits and its settings, so re-running on an unchanged catalog
finds it and computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from tasks.fingerprint import recyclable
from zoo.content import content_key
from zoo.hub.adapter_ids import adapter_id, split_adapter_id
from zoo.settings import load_settings
from zoo.similarity.fingerprint import FINGERPRINT_VERSION


def similarity_plot(clustering_id: str) -> Path:
    """Where a clustering's heatmap is drawn (it is attached to its candidates' MLflow runs)."""
    return load_settings().home / "plots" / f"similarity-{clustering_id}.png"


@dataclass(frozen=True)
class ClusterPlan:
    clustering_id: str
    members: list[tuple[str, str]]  # (adapter id, sha), sorted: a root adapter's id is its repo id
    settings: dict[str, Any]
    exists: bool


@task(name="plan clustering", cache_policy=NO_CACHE)
def plan_clustering(catalog_path: Path, base_model: str, k: int | None, seed: int, k_max: int) -> ClusterPlan:
    """The members (adapters with an ``ok`` fingerprint) and the content key of their clustering."""
    with Catalog.open(catalog_path) as cat:
        adapters = recyclable(cat, base_model)
        done = records.fingerprinted(cat, FINGERPRINT_VERSION)
        fingerprints = {(a["adapter_id"], a["sha"]): done.get((a["repo_id"], a["subfolder"], a["sha"]), {})
                        for a in adapters}
        members = sorted(m for m, fp in fingerprints.items() if fp.get("status") == "ok")
        sketch = {(fingerprints[m]["sketch_size"], fingerprints[m]["sketch_seed"]) for m in members}
        if len(sketch) > 1:
            raise ValueError(f"fingerprints of {base_model} mix sketch settings {sorted(sketch)}: re-run fingerprint")
        settings = {"k": k, "seed": seed, "k_max": k_max, "fingerprint_version": FINGERPRINT_VERSION,
                    "sketch": list(sketch.pop()) if sketch else None}
        clustering_id = content_key({"base_model": base_model, "members": members, "method": "mbc",
                                     "similarity": "sketch", **settings})
        exists = records.has_row(cat, "clusterings", "clustering_id", clustering_id)
    return ClusterPlan(clustering_id, members, settings, exists)


@task(name="cluster adapters", cache_policy=NO_CACHE)
def cluster_members(catalog_path: Path, base_model: str, plan: ClusterPlan, plot_path: Path) -> None:
    """k-means on the sketch-estimated cosine of the updates; stores the clustering and draws its heatmap."""
    import numpy as np

    from zoo.algebra import sketch_cosine_matrix
    from zoo.plots import similarity_heatmap
    from zoo.similarity.clustering import cluster
    from zoo.similarity.fingerprint import sketches_from_rows

    if not plan.members:
        raise ValueError(f"no fingerprinted adapters of {base_model}: run crawl and fingerprint first")
    size = plan.settings["sketch"][0]
    keys = [(*split_adapter_id(name), sha) for name, sha in plan.members]
    with Catalog.open(catalog_path) as cat:
        rows = records.module_sketches(cat, keys, FINGERPRINT_VERSION).to_pylist()
    by_adapter: dict[str, list[dict]] = {}
    for row in rows:
        by_adapter.setdefault(adapter_id(row["repo_id"], row["subfolder"]), []).append(row)
    sketches = [sketches_from_rows(by_adapter.get(name, []), size) for name, _ in plan.members]
    similarity = sketch_cosine_matrix(sketches)
    n = len(plan.members)
    result = cluster(similarity, k=plan.settings["k"], k_range=(2, plan.settings["k_max"]), seed=plan.settings["seed"])
    names = [name for name, _ in plan.members]
    similarity_heatmap(np.asarray(similarity), names, result.labels.tolist(), plot_path)
    with Catalog.open(catalog_path) as cat:
        records.store_clustering(
            cat,
            {"clustering_id": plan.clustering_id, "base_model": base_model, "method": "mbc", "similarity": "sketch",
             "k": result.k, "silhouette": result.silhouette,
             "silhouette_by_k": {str(kk): v for kk, v in result.silhouette_by_k.items()}, "members": n,
             "settings": plan.settings, "created_at": datetime.now(UTC)},
            [{"clustering_id": plan.clustering_id, "repo_id": repo_id, "subfolder": subfolder, "sha": sha,
              "cluster": int(label)}
             for (repo_id, subfolder, sha), label in zip(keys, result.labels.tolist(), strict=True)],
        )


@task(name="publish cluster table", cache_policy=NO_CACHE)
def publish_clusters(catalog_path: Path, clustering_id: str) -> list[list[str]]:
    """A table artifact with one row per cluster; returns the clusters' adapter ids."""
    with Catalog.open(catalog_path) as cat:
        members = records.clustering_members(cat, clustering_id)
    clusters: dict[int, list[str]] = {}
    for m in members:
        clusters.setdefault(m["cluster"], []).append(adapter_id(m["repo_id"], m["subfolder"]))
    create_table_artifact(
        key="clusters",
        table=[{"cluster": c, "size": len(repos), "adapters": ", ".join(repos)}
               for c, repos in sorted(clusters.items())],
        description=f"MBC clustering {clustering_id}: adapters grouped by the similarity of their weight updates.",
    )
    return [repos for _, repos in sorted(clusters.items())]
