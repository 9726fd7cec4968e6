"""What the recycling flows read from and write to the catalog (fingerprints, clusterings, candidates,
evaluations, registrations).

Every row is keyed by a content hash that the caller computes, and each write is one transaction: a
flow killed mid-way leaves whole rows only, and a re-run skips every key already present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from catalog.db import Catalog, Rows


def recyclable_base_models(cat: Catalog, min_adapters: int = 2) -> list[str]:
    """Base models with at least ``min_adapters`` supported adapters, most adapters first."""
    return cat.named("recyclable_base_models", min_adapters=min_adapters).column("base_model").to_pylist()


def recyclable_adapters(cat: Catalog, base_model: str) -> list[dict[str, Any]]:
    """``repo_id, subfolder, sha, datasets`` of every supported, present adapter of ``base_model`` (one row per
    adapter folder: ``subfolder`` is '' at a repo's root)."""
    return cat.named("recyclable_adapters", base_model=base_model).to_pylist()


def fingerprinted(cat: Catalog, version: int) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``(repo_id, subfolder, sha) -> {status, sketch_size, sketch_seed}`` of the fingerprints computed under
    ``version``."""
    rows = cat.named("fingerprinted", version=version).to_pylist()
    return {(r.pop("repo_id"), r.pop("subfolder"), r.pop("sha")): r for r in rows}


def store_fingerprint(cat: Catalog, adapter: Mapping[str, Any], modules: Rows) -> None:
    """One adapter's fingerprint and its per-module rows, together or not at all."""
    with cat.transaction():
        cat.upsert("adapter_fingerprints", [adapter])
        if modules:
            cat.upsert("module_fingerprints", modules)


def module_sketches(cat: Catalog, members: Sequence[tuple[str, str, str]], version: int) -> pa.Table:
    """``repo_id, subfolder, module, sketch`` of the given ``(repo_id, subfolder, sha)`` members."""
    return cat.named("module_sketches", repo_ids=[m[0] for m in members], subfolders=[m[1] for m in members],
                     shas=[m[2] for m in members], version=version)


def has_row(cat: Catalog, table: str, key: str, value: str) -> bool:
    """Whether ``table`` holds a row whose primary-key column ``key`` equals ``value``."""
    if key not in cat.primary_key(table):
        raise KeyError(f"{key} is not the primary key of {table}")
    return cat.query(f'SELECT 1 FROM "{table}" WHERE "{key}" = ? LIMIT 1', [value]).num_rows > 0


def present_keys(cat: Catalog, table: str, key: str, values: Iterable[str]) -> set[str]:
    """Which of ``values`` are present as ``key`` in ``table``."""
    values = list(values)
    if key not in cat.primary_key(table):
        raise KeyError(f"{key} is not the primary key of {table}")
    rows = cat.query(f'SELECT "{key}" AS k FROM "{table}" WHERE "{key}" IN (SELECT unnest(?))', [values])
    return set(rows.column("k").to_pylist())


def store_clustering(cat: Catalog, clustering: Mapping[str, Any], members: Rows) -> None:
    with cat.transaction():
        cat.upsert("clusterings", [clustering])
        cat.upsert("cluster_members", members)


def clustering_members(cat: Catalog, clustering_id: str) -> list[dict[str, Any]]:
    """``repo_id, subfolder, sha, cluster`` of a stored clustering, by cluster then repo and folder."""
    return cat.query("SELECT repo_id, subfolder, sha, cluster FROM cluster_members WHERE clustering_id = ? "
                     "ORDER BY cluster, repo_id, subfolder", [clustering_id]).to_pylist()


def store_candidate(cat: Catalog, candidate: Mapping[str, Any]) -> None:
    cat.upsert("candidates", [candidate])


def store_failure(cat: Catalog, failure: Mapping[str, Any]) -> None:
    """Why a candidate could not be built or scored (``candidate_failures``; the latest reason per step)."""
    cat.upsert("candidate_failures", [failure])


def candidates(cat: Catalog, keys: Sequence[str]) -> list[dict[str, Any]]:
    """The stored candidates with these keys, in the given order."""
    rows = {r["candidate_key"]: r for r in
            cat.query("SELECT * FROM candidates WHERE candidate_key IN (SELECT unnest(?))", [list(keys)]).to_pylist()}
    missing = [k for k in keys if k not in rows]
    if missing:
        raise KeyError(f"unknown candidates {missing}: run build_candidates first")
    return [rows[k] for k in keys]


def store_evaluation(cat: Catalog, evaluation: Mapping[str, Any], tasks: Rows, metrics: Rows) -> None:
    """A candidate's evaluation with its per-task rows and its metric values (long), in one commit."""
    with cat.transaction():
        cat.upsert("evaluations", [evaluation])
        cat.upsert("evaluation_tasks", tasks)
        cat.upsert("evaluation_metrics", metrics)


def evaluations(cat: Catalog, eval_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Stored evaluations joined with their candidates, in the given order (missing keys left out); ``means``
    holds each split's metric means (``means["held-out"]["exact_match"]``)."""
    rows = cat.query(
        "SELECT e.*, c.name, c.kind, c.method, c.members, c.settings AS candidate_settings, c.artifact, "
        "c.clustering_id, c.base_revision FROM evaluations e JOIN candidates c USING (candidate_key) "
        "WHERE e.eval_key IN (SELECT unnest(?))", [list(eval_keys)]).to_pylist()
    means = evaluation_means(cat, eval_keys)
    by_key = {r["eval_key"]: {**r, "means": means.get(r["eval_key"], {})} for r in rows}
    return [by_key[k] for k in eval_keys if k in by_key]


def evaluation_means(cat: Catalog, eval_keys: Sequence[str]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``eval_key -> split -> metric -> mean over the split's tasks`` (``None``: not measured)."""
    rows = cat.query("SELECT eval_key, split, metric, value FROM evaluation_means WHERE eval_key IN (SELECT unnest(?))",
                     [list(eval_keys)]).to_pylist()
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in rows:
        out.setdefault(r["eval_key"], {}).setdefault(r["split"], {})[r["metric"]] = r["value"]
    return out


def evaluation_tasks(cat: Catalog, eval_key: str) -> list[dict[str, Any]]:
    """Per task of one evaluation: its row, with ``metrics`` as a dict of metric name to value."""
    rows = cat.query("SELECT t.*, s.metrics FROM evaluation_tasks t JOIN evaluation_scores s USING (eval_key, task) "
                     "WHERE eval_key = ? ORDER BY t.split, t.task", [eval_key]).to_pylist()
    return [{**r, "metrics": dict(r["metrics"])} for r in rows]


def leaderboard(cat: Catalog, base_model: str, suite_hash: str) -> list[dict[str, Any]]:
    """Rows of the ``leaderboard`` view for one base model and suite (unranked order); the ``held_in`` and
    ``held_out`` maps as dicts of metric name to mean."""
    rows = cat.query("SELECT * FROM leaderboard WHERE base_model = ? AND suite_hash = ? ORDER BY eval_key",
                     [base_model, suite_hash]).to_pylist()
    return [{**r, "held_in": dict(r["held_in"] or {}), "held_out": dict(r["held_out"] or {})} for r in rows]


def screened_out(cat: Catalog, base_model: str, suite_hash: str) -> list[dict[str, Any]]:
    """Candidates screened on this suite (their latest screening) that were never evaluated on it in full."""
    return cat.query(
        "SELECT s.candidate_key, c.name, c.kind, s.held_in_nll, s.examples FROM screenings s "
        "JOIN candidates c USING (candidate_key) WHERE s.base_model = ? AND s.suite_hash = ? AND NOT EXISTS "
        "(SELECT 1 FROM evaluations e WHERE e.candidate_key = s.candidate_key AND e.suite_hash = s.suite_hash) "
        "QUALIFY row_number() OVER (PARTITION BY s.candidate_key ORDER BY s.screened_at DESC) = 1 "
        "ORDER BY s.held_in_nll, c.name", [base_model, suite_hash]).to_pylist()


def task_metrics(cat: Catalog, eval_keys: Sequence[str]) -> list[dict[str, Any]]:
    """``eval_key, task, split, n, metrics`` (a dict) of every task of these evaluations."""
    rows = cat.query("SELECT eval_key, task, split, n, metrics FROM evaluation_scores "
                     "WHERE eval_key IN (SELECT unnest(?)) ORDER BY eval_key, split, task", [list(eval_keys)]).to_pylist()
    return [{**r, "metrics": dict(r["metrics"])} for r in rows]


def store_ranks(cat: Catalog, ranks: Mapping[str, int]) -> None:
    """Ranks (``eval_key -> rank``, 1 = best) as the orchestrating code computed them; the ``leaderboard``
    view shows them."""
    if ranks:
        cat.upsert("evaluation_ranks", [{"eval_key": k, "rank": r} for k, r in ranks.items()])


def set_mlflow_run(cat: Catalog, eval_key: str, run_id: str) -> None:
    cat.execute_named("set_mlflow_run", eval_key=eval_key, run_id=run_id)


def store_registration(cat: Catalog, registration: Mapping[str, Any]) -> None:
    cat.upsert("registrations", [registration])
