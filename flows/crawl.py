"""``crawl_hub``: the hub's LoRA adapters into the DuckDB catalog, incrementally.

A recipe: open a run, list the adapters (one paginated listing), store the listing and plan which
repos changed, read those in batches (each batch stored in its own transaction while the next one
is read), mark vanished repos removed, publish a summary, close the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from prefect import flow
from prefect.utilities.annotations import quote

from tasks.crawl import (
    AdapterFacts,
    CrawlQuery,
    HubConnection,
    ListedRepo,
    batches,
    catalog_held_open,
    close_crawl_run,
    connect_hub,
    list_hub_adapters,
    open_crawl_run,
    read_adapters,
    record_listing,
    settle_removals,
    store_adapters,
)
from tasks.crawl_report import CrawlProgress, CrawlTally, publish_summary
from zoo.settings import load_settings


@flow(name="crawl-hub", log_prints=False)
def crawl_hub(
    endpoint: str | None = None,
    base_models: list[str] | None = None,
    search: str | None = None,
    author: str | None = None,
    limit: int | None = None,
    verify_weights: bool = False,
    catalog_path: str | None = None,
    max_workers: int = 8,
    batch_size: int = 1000,
) -> dict[str, int]:
    """Crawl PEFT adapters of ``endpoint`` (default ``HF_ENDPOINT``) into the catalog (default under ``ZOO_HOME``).

    ``verify_weights`` downloads every changed weight file to find NaN/inf values; otherwise only
    configs and safetensors headers are read. Returns the run's counters.
    """
    settings = load_settings()
    catalog = Path(catalog_path) if catalog_path else settings.catalog_path
    query = CrawlQuery(base_models=tuple(base_models or ()), search=search, author=author, limit=limit)
    run_id = str(uuid.uuid4())
    with catalog_held_open(catalog), connect_hub(endpoint, max_workers) as hub:
        open_crawl_run(catalog, run_id, hub.http.endpoint, query, verify_weights)
        tally = CrawlTally()
        try:
            progress = CrawlProgress(hub.http)
            progress.report("listing", 0, 0)
            # quote(): large record lists are passed as they are, not searched by Prefect for futures
            listing = list_hub_adapters(hub, query)
            plan = record_listing(catalog, quote(listing), verify_weights, hub.http.credentials)
            tally.counts.update(plan.counts)
            progress.report("reading", 0, len(plan.to_fetch))
            hub.on_repo_read = progress.repo_read
            for facts in _read_in_batches(hub, plan.to_fetch, batch_size, verify_weights):
                store_adapters(catalog, quote(facts))
                tally.add(facts)
                progress.report("reading", tally.read, len(plan.to_fetch))
            tally.counts.update(settle_removals(hub, catalog, query, quote(listing)))
            tally.counts["http_requests"] = hub.http.requests
            tally.counts["rate_limited"] = hub.http.pacer.rate_limited
            publish_summary(tally.counts, tally.refused, hub.http)
            progress.report("done", tally.read, len(plan.to_fetch))
        except BaseException as err:
            tally.counts["http_requests"] = hub.http.requests
            tally.counts["rate_limited"] = hub.http.pacer.rate_limited
            close_crawl_run(catalog, run_id, "failed", tally.counts, error=f"{type(err).__name__}: {err}")
            raise
        close_crawl_run(catalog, run_id, "completed", tally.counts)
    return tally.counts


def _read_in_batches(
    hub: HubConnection, repos: Sequence[ListedRepo], batch_size: int, verify_weights: bool
) -> Iterator[list[AdapterFacts]]:
    """Each batch's facts, in order, while the next batch is already being read (the pool stays busy)."""
    pending = None
    for offset, batch in batches(repos, batch_size):
        name = f"read adapters {offset + 1}-{offset + len(batch)} of {len(repos)}"
        future = read_adapters.with_options(task_run_name=name).submit(hub, quote(batch), verify_weights)
        if pending is not None:
            yield pending.result()
        pending = future
    if pending is not None:
        yield pending.result()
