"""Crawling the hub's LoRA adapters: listing, incremental planning, reading configs and headers.

Pure hub logic on ``huggingface_hub``'s HTTP client; it returns plain records and never imports
Prefect, DuckDB or MLflow (the tasks layer moves its records into the catalog).
"""

from zoo.crawl.base_model import BaseModelShapes
from zoo.crawl.http import HubHttp, RetryPolicy
from zoo.crawl.inspect import READER_VERSION, inspect_adapter, inspect_repo
from zoo.crawl.listing import list_adapter_repos
from zoo.crawl.plan import KnownAdapter, Vanished, changed_listings, plan_fetches, vanished
from zoo.crawl.query import CrawlQuery
from zoo.crawl.records import AdapterFacts, ListedRepo, ModuleShape

__all__ = [
    "READER_VERSION",
    "AdapterFacts",
    "BaseModelShapes",
    "CrawlQuery",
    "HubHttp",
    "KnownAdapter",
    "ListedRepo",
    "ModuleShape",
    "RetryPolicy",
    "Vanished",
    "changed_listings",
    "inspect_adapter",
    "inspect_repo",
    "list_adapter_repos",
    "plan_fetches",
    "vanished",
]
