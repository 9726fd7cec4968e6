"""Prefect tasks of ``build_candidates``: plan the candidates of a clustering, build their folders, record them.

The candidate model is ``zoo.candidates`` (one spec, one content key, kinds that build themselves); these
tasks only fetch what a build needs from the hub and the catalog, and pass plain data: specs, paths and
catalog rows. Folders live under ``ZOO_HOME/candidates/<key>/`` (``adapter/`` in PEFT format, or
``library/``), so a re-run with nothing new finds every key in the catalog and builds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from tasks.fingerprint import recyclable
from tasks.hub import hub_from_settings
from tasks.progress import StepProgress
from zoo.candidates import (
    BuildContext,
    CandidateChoices,
    CandidateSpec,
    Expert,
    ExpertPool,
    Member,
    build_candidate,
    plan_candidates,
)
from zoo.hub.snapshots import adapter_snapshot, expert_data


@task(name="plan candidates", cache_policy=NO_CACHE)
def plan_clustering_candidates(catalog_path: Path, base_model: str, base_revision: str, clustering_id: str,
                               choices: Mapping[str, Any] | None) -> list[CandidateSpec]:
    """The candidates of one clustering (``choices``: ``zoo.candidates.CandidateChoices`` as JSON), in order."""
    with Catalog.open(catalog_path) as cat:
        rows = records.clustering_members(cat, clustering_id)
    clusters: dict[int, list[Member]] = {}
    for row in rows:
        clusters.setdefault(row["cluster"], []).append(Member(row["repo_id"], row["sha"], row["subfolder"]))
    members = [m for group in clusters.values() for m in group]
    return plan_candidates(members, clusters, CandidateChoices.from_json(choices), base_model, base_revision,
                           clustering_id)


@task(name="find built candidates", cache_policy=NO_CACHE)
def built_keys(catalog_path: Path, keys: Sequence[str]) -> set[str]:
    with Catalog.open(catalog_path) as cat:
        return records.present_keys(cat, "candidates", "candidate_key", keys)


@task(name="read expert datasets", cache_policy=NO_CACHE)
def expert_datasets(catalog_path: Path, base_model: str) -> dict[str, list[str]]:
    """The datasets each usable adapter's card names (where data-aware builds find training examples), by
    adapter id (adapters in subfolders of one repo share its card)."""
    with Catalog.open(catalog_path) as cat:
        return {a["adapter_id"]: list(a["datasets"] or []) for a in recyclable(cat, base_model)}


@task(name="build candidates", tags=["build"], retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def build_shard(specs: Sequence[CandidateSpec], base_dir: Path, candidates_dir: Path,
                datasets: Mapping[str, list[str]], device: str, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Build the folders of ``specs`` on one base model (loaded at most once, only if a build needs it);
    returns their catalog rows. The members' files and data come from the hub (cached, pinned)."""
    hub = hub_from_settings(endpoint)
    members = {m for spec in specs for m in spec.members}
    experts = []
    for member in sorted(members):
        data = expert_data(hub, list(datasets.get(member.adapter_id, [])))
        folder = adapter_snapshot(hub, member.repo_id, member.revision, member.subfolder)
        experts.append(Expert(member.repo_id, folder, member.revision, data.train_file if data else None,
                              dict(data.labels) if data else {}, member.subfolder))
    context = BuildContext(ExpertPool.of(experts), base_dir, device)
    progress = StepProgress("build-progress", "candidates built", len(specs))
    rows = []
    for spec in specs:
        build_candidate(spec, context, candidates_dir)
        rows.append(candidate_row(spec))
        progress.advance()
    return rows


@task(name="record candidates", tags=["catalog"], cache_policy=NO_CACHE)
def store_candidates(catalog_path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with Catalog.open(catalog_path) as cat:
        for row in rows:
            records.store_candidate(cat, row)


def candidate_row(spec: CandidateSpec) -> dict[str, Any]:
    """The catalog row of a built candidate."""
    return {"candidate_key": spec.key, "base_model": spec.base_model, "base_revision": spec.base_revision,
            "name": spec.label, "kind": spec.kind, "method": spec.method, "clustering_id": spec.clustering_id,
            "cluster": spec.cluster, "members": [m.ref for m in spec.members], "settings": dict(spec.settings),
            "artifact": spec.artifact, "created_at": datetime.now(UTC)}


def spec_from_row(row: Mapping[str, Any]) -> CandidateSpec:
    """The spec of a stored candidate row (its JSON columns as text or values)."""
    members, settings = (json.loads(v) if isinstance(v, str) else v for v in (row["members"], row["settings"]))
    return CandidateSpec(row["kind"], tuple(Member.parse(m) for m in members), row["method"], settings or {},
                         row["name"], row["base_model"], row["base_revision"], row["clustering_id"], row["cluster"])
