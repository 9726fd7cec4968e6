"""Prefect tasks of the hub crawl: thin wrappers that give ``zoo.crawl`` and ``catalog`` retries, tags,
names that read well in the UI and bounded concurrency (what a crawl reports is in ``crawl_report``).

Only the per-batch tasks carry tags (``hub`` for reads, ``catalog`` for writes), so that an operator can
cap them with a tag concurrency limit (``prefect concurrency-limit create hub 2``). Every tagged task
run costs a round trip to the API for that limit, which the once-per-crawl tasks need not pay: an
unchanged hub is re-crawled with no tagged task at all.

Tasks exchange plain records (``ListedRepo``, ``AdapterFacts``) and the catalog's path; each catalog
write is its own transaction, so a crash loses nothing already stored. The hub token is read from
the settings here and never travels as a parameter, so it cannot reach the Prefect API or a log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import crawl_records as records
from zoo.crawl import (
    AdapterFacts,
    BaseModelShapes,
    CrawlQuery,
    HubHttp,
    KnownAdapter,
    ListedRepo,
    RetryPolicy,
    changed_listings,
    inspect_repo,
    list_adapter_repos,
    plan_fetches,
    vanished,
)
from zoo.settings import load_settings


@dataclass
class HubConnection:
    """One crawl's link to the hub: the retrying HTTP client, the base-model shapes read so far, the
    thread pool that bounds how many repos are read at once, whatever the number of tasks, and whom to
    tell when a repo has been read (the progress bar)."""

    http: HubHttp
    bases: BaseModelShapes
    pool: ThreadPoolExecutor
    on_repo_read: Callable[[], None] = lambda: None

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@dataclass
class Listing:
    """What the listing returned; ``complete`` when no ``limit`` cut it short."""

    repos: list[ListedRepo]
    complete: bool


@dataclass
class CrawlPlan:
    to_fetch: list[ListedRepo]
    counts: dict[str, int] = field(default_factory=dict)


@contextmanager
def connect_hub(endpoint: str | None, max_workers: int, retry: RetryPolicy | None = None) -> Iterator[HubConnection]:
    """Open the hub at ``endpoint`` (default: ``HF_ENDPOINT``) with the user's token (``HF_TOKEN``, else the
    one ``hf auth login`` saved, found by ``huggingface_hub``)."""
    settings = load_settings()
    http = HubHttp(endpoint or settings.hf_endpoint, token=settings.hf_token, retry=retry)
    hub = HubConnection(http=http, bases=BaseModelShapes(http), pool=ThreadPoolExecutor(max_workers, "hub-read"))
    try:
        yield hub
    finally:
        hub.close()


@contextmanager
def catalog_held_open(catalog_path: Path) -> Iterator[None]:
    """Keep the catalog's DuckDB database open for a whole crawl.

    The tasks open their own connections by path; while one stays open they share its in-process
    database (a connection costs a millisecond) and no checkpoint runs between two tasks.
    """
    with Catalog.open(catalog_path):
        yield


def open_crawl_run(catalog_path: Path, run_id: str, endpoint: str, query: CrawlQuery, verify_weights: bool) -> None:
    """Record the run as running (bookkeeping, not a task: the run row is what a crash leaves behind)."""
    with Catalog.open(catalog_path) as cat:
        run_query = {**query.to_dict(), "verify_weights": verify_weights}
        records.start_run(cat, run_id, endpoint, run_query, datetime.now(UTC))


@task(name="list adapters on the hub", retries=1, retry_delay_seconds=30, cache_policy=NO_CACHE)
def list_hub_adapters(hub: HubConnection, query: CrawlQuery) -> Listing:
    """One listing; if the hub stays down longer than the HTTP retries wait, once more after 30 s."""
    repos = list_adapter_repos(hub.http, query)
    return Listing(repos=repos, complete=query.limit is None or len(repos) < query.limit)


@task(name="record listing", cache_policy=NO_CACHE)
def record_listing(catalog_path: Path, listing: Listing, verify_weights: bool, credentials: str) -> CrawlPlan:
    """Store the listing entries and stats that changed, and decide which repos a crawl with ``credentials``
    must read."""
    with Catalog.open(catalog_path) as cat:
        stored = records.known_repos(cat).to_pylist()
        changed = changed_listings(listing.repos, {r["repo_id"]: (r["listing_digest"], r["removed"]) for r in stored})
        stats = {r["repo_id"]: (r["downloads"], r["likes"]) for r in stored}
        records.store_listing(
            cat,
            [_repo_row(repo) for repo in changed],
            [{"repo_id": repo.repo_id, "dataset_id": d} for repo in changed for d in sorted(set(repo.datasets))],
        )
        records.store_stats(
            cat,
            [
                {"repo_id": repo.repo_id, "downloads": repo.downloads, "likes": repo.likes}
                for repo in listing.repos
                if stats.get(repo.repo_id) != (repo.downloads, repo.likes)
            ],
        )
    known = {r["repo_id"]: _known(r) for r in stored if r["sha"] is not None}
    to_fetch, counts = plan_fetches(listing.repos, known, verify_weights, credentials)
    return CrawlPlan(to_fetch=to_fetch, counts={"seen": len(listing.repos), **counts})


@task(name="read adapters", tags=["crawl", "hub"], cache_policy=NO_CACHE)
def read_adapters(hub: HubConnection, repos: Sequence[ListedRepo], verify_weights: bool) -> list[AdapterFacts]:
    """Read configs and weight headers of ``repos`` on the crawl's shared pool (a repo's failure is its record):
    the facts of every adapter folder of every repo."""

    def read(repo: ListedRepo) -> list[AdapterFacts]:
        adapters = inspect_repo(hub.http, repo, hub.bases, verify_weights)
        hub.on_repo_read()
        return adapters

    return [facts for adapters in hub.pool.map(read, repos) for facts in adapters]


@task(name="store adapters", tags=["crawl", "catalog"], cache_policy=NO_CACHE)
def store_adapters(catalog_path: Path, facts: Sequence[AdapterFacts]) -> None:
    with Catalog.open(catalog_path) as cat:
        records.store_adapters(
            cat,
            [_adapter_row(f) for f in facts],
            [{"repo_id": f.repo_id, "subfolder": f.subfolder, **_fields(m)} for f in facts for m in f.modules],
        )


@task(name="mark removed repos", cache_policy=NO_CACHE)
def settle_removals(hub: HubConnection, catalog_path: Path, query: CrawlQuery, listing: Listing) -> dict[str, int]:
    """After a complete listing, mark repos the hub confirms are gone as removed, and renamed ones as
    removed pointing to their new id; returns how many of each."""
    if not listing.complete:
        return {"removed": 0, "renamed": 0}
    scope = query.scope(hub.http.endpoint)
    listed = [repo.repo_id for repo in listing.repos]
    with Catalog.open(catalog_path) as cat:
        before = records.listing_members(cat, scope)
    if set(before) == set(listed):
        return {"removed": 0, "renamed": 0}  # the same repos as last time: nothing to write
    gone = vanished(hub.http, before, listed)
    with Catalog.open(catalog_path) as cat:
        records.settle_listing(cat, scope, listed, gone.removed, gone.renamed)
    return {"removed": len(gone.removed), "renamed": len(gone.renamed)}


def close_crawl_run(
    catalog_path: Path, run_id: str, status: str, counts: dict[str, int], error: str | None = None
) -> None:
    """Record how the run ended, with its counters."""
    with Catalog.open(catalog_path) as cat:
        records.finish_run(cat, run_id, status, counts, datetime.now(UTC), error)


def batches(items: Sequence[Any], size: int) -> Iterator[tuple[int, Sequence[Any]]]:
    """``(offset, slice)`` pairs of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def _repo_row(repo: ListedRepo) -> dict[str, Any]:
    return _fields(repo, skip=("datasets", "downloads", "likes"))


def _adapter_row(facts: AdapterFacts) -> dict[str, Any]:
    return _fields(facts, skip=("modules",))


def _fields(record: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record's fields as a row (shallow: ``dataclasses.asdict`` would deep-copy every card)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name not in skip}


def _known(row: dict[str, Any]) -> KnownAdapter:
    return KnownAdapter(
        sha=row["sha"],
        status=row["status"],
        reader_version=row["reader_version"],
        weights_verified=row["weights_verified"],
        credentials=row["credentials"],
    )
