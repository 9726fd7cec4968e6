"""What the hub crawler reads from and writes to the catalog.

Each write is one transaction, so a crash between two writes loses nothing already written and a
re-run picks up exactly what is missing: the crawler re-reads a repo whenever the commit recorded
in ``adapters`` differs from the one the listing reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from catalog.db import Catalog, Rows

RUN_COUNTERS = ("seen", "new", "updated", "unchanged", "failed", "removed", "renamed", "http_requests", "rate_limited")


def start_run(cat: Catalog, run_id: str, endpoint: str, query: Mapping[str, Any], started_at: datetime) -> None:
    """Record a running crawl. Runs still 'running' are dead ones (DuckDB admits one writer process)."""
    with cat.transaction():
        cat.execute_named("abandon_interrupted_runs")
        run = {"run_id": run_id, "started_at": started_at, "endpoint": endpoint, "query": dict(query)}
        cat.upsert("crawl_runs", [{**run, "status": "running"}])


def finish_run(
    cat: Catalog,
    run_id: str,
    status: str,
    counts: Mapping[str, int],
    finished_at: datetime,
    error: str | None = None,
) -> None:
    """Close a run with its counters ('completed' or 'failed' with the error)."""
    values = {name: int(counts.get(name, 0)) for name in RUN_COUNTERS}
    cat.execute_named("finish_run", run_id=run_id, status=status, finished_at=finished_at, error=error, **values)


def known_repos(cat: Catalog) -> pa.Table:
    """Per repo: ``listing_digest, removed, downloads, likes`` and, once read, ``sha, status, reader_version,
    weights_verified, credentials`` over its adapters."""
    return cat.named("known_repos")


def store_listing(cat: Catalog, repos: Rows, card_datasets: Rows) -> None:
    """Upsert listed repos (present again, so not removed) and replace the datasets their cards name."""
    rows = cat.conform("hub_repos", repos)
    if not rows.num_rows:
        return
    if "removed" in rows.column_names:
        rows = rows.drop_columns(["removed"])  # the default, false: a listed repo is present
    with cat.transaction():
        cat.upsert("hub_repos", rows)
        cat.replace_children("card_datasets", "repo_id", rows.column("repo_id").to_pylist(), card_datasets)


def store_stats(cat: Catalog, stats: Rows) -> None:
    """Upsert repos' downloads and likes: their own table, so moving counters rewrite nothing else."""
    cat.upsert("repo_stats", stats)


def store_adapters(cat: Catalog, adapters: Rows, modules: Rows) -> None:
    """Replace what is known of some adapter repos (every adapter folder and its modules), in one commit.

    A repo is read whole, so an adapter folder that a new commit deleted disappears with it."""
    batch = cat.conform("adapters", adapters)
    if not batch.num_rows:
        return
    repos = sorted(set(batch.column("repo_id").to_pylist()))
    with cat.transaction():
        cat.replace_children("adapters", "repo_id", repos, batch)
        cat.replace_children("adapter_modules", "repo_id", repos, modules)


def listing_members(cat: Catalog, scope: str) -> list[str]:
    """Repo ids the last complete listing of ``scope`` returned."""
    return cat.named("listing_members", scope=scope).column("repo_id").to_pylist()


def settle_listing(
    cat: Catalog, scope: str, listed: Sequence[str], removed: Sequence[str], renamed: Mapping[str, str] | None = None
) -> None:
    """After a complete listing: mark ``removed`` repos as removed, ``renamed`` ones (old id -> new id) as
    removed pointing to their new id, and remember what ``scope`` returned."""
    with cat.transaction():
        if removed:
            cat.execute_named("mark_removed", repo_ids=list(removed))
        if renamed:
            cat.execute_named("mark_renamed", old_ids=list(renamed), new_ids=list(renamed.values()))
        cat.execute_named("forget_listing", scope=scope)
        cat.upsert("listing_members", [{"scope": scope, "repo_id": repo_id} for repo_id in listed])
