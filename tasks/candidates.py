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
from zoo.candidates.store import CandidateStore
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


@task(name="build shard", tags=["build"], retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def build_shard(specs: Sequence[CandidateSpec], base_dir: Path, store: CandidateStore,
                datasets: Mapping[str, list[str]], device: str, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Build the folders of a shard's ``specs`` on one base model (loaded at most once, only if a build needs
    it) and put them in the candidate store; returns one plain result per spec (``status`` ok with its
    catalog row, or failed with the reason), each also left in the store. The members' files and data come
    from the hub (cached, pinned). Specs built by an earlier hand-out of the shard are not built again."""
    results = {spec.key: store.read_result(build_result_name(spec.key)) for spec in specs}
    todo = [spec for spec in specs if not done(results[spec.key])]
    if todo:
        context = BuildContext(ExpertPool.of(_experts(todo, datasets, endpoint)), base_dir, device)
        progress = StepProgress("build-progress", "candidates built (this shard)", len(todo))
        for spec in todo:
            try:
                build_candidate(spec, context, store.working_dir)
                store.publish(spec.artifact)
                results[spec.key] = {"status": "ok", "candidate_key": spec.key, "row": candidate_row(spec)}
            except Exception as err:  # noqa: BLE001  (one bad candidate fails alone; the shard goes on)
                results[spec.key] = {"status": "failed", "candidate_key": spec.key,
                                     "reason": f"{type(err).__name__}: {err}"}
            store.write_result(build_result_name(spec.key), results[spec.key])
            progress.advance()
    return [results[spec.key] for spec in specs]


def done(result: dict[str, Any] | None) -> bool:
    """A success left by an earlier hand-out of the shard (a failure is tried again)."""
    return result is not None and result["status"] == "ok"


def build_result_name(candidate_key: str) -> str:
    return f"build-{candidate_key}"


def _experts(specs: Sequence[CandidateSpec], datasets: Mapping[str, list[str]], endpoint: str | None) -> list[Expert]:
    """The members of ``specs``, each with its hub snapshot and training data (if its card names some)."""
    hub = hub_from_settings(endpoint)
    experts = []
    for member in sorted({m for spec in specs for m in spec.members}):
        data = expert_data(hub, list(datasets.get(member.adapter_id, [])))
        folder = adapter_snapshot(hub, member.repo_id, member.revision, member.subfolder)
        experts.append(Expert(member.repo_id, folder, member.revision, data.train_file if data else None,
                              dict(data.labels) if data else {}, member.subfolder))
    return experts


@task(name="record candidates", tags=["catalog"], cache_policy=NO_CACHE)
def store_candidates(catalog_path: Path, results: Sequence[dict[str, Any]]) -> list[str]:
    """Store what shards built, and the failures with their reasons; returns the keys built."""
    now = datetime.now(UTC)
    built = []
    with Catalog.open(catalog_path) as cat:
        for result in results:
            if result["status"] == "ok":
                records.store_candidate(cat, {**result["row"], "created_at": now})
                built.append(result["candidate_key"])
            else:
                records.store_failure(cat, {"candidate_key": result["candidate_key"], "step": "build",
                                            "reason": result["reason"], "failed_at": now})
    return built


def candidate_row(spec: CandidateSpec) -> dict[str, Any]:
    """The catalog row of a built candidate, as plain JSON (the orchestrator stamps ``created_at``)."""
    return {"candidate_key": spec.key, "base_model": spec.base_model, "base_revision": spec.base_revision,
            "name": spec.label, "kind": spec.kind, "method": spec.method, "clustering_id": spec.clustering_id,
            "cluster": spec.cluster, "members": [m.ref for m in spec.members], "settings": dict(spec.settings),
            "artifact": spec.artifact}


def spec_from_row(row: Mapping[str, Any]) -> CandidateSpec:
    """The spec of a stored candidate row (its JSON columns as text or values)."""
    members, settings = (json.loads(v) if isinstance(v, str) else v for v in (row["members"], row["settings"]))
    return CandidateSpec(row["kind"], tuple(Member.parse(m) for m in members), row["method"], settings or {},
                         row["name"], row["base_model"], row["base_revision"], row["clustering_id"], row["cluster"])
