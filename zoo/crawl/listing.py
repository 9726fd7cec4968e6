"""Listing the hub's PEFT adapter repos, with every field the catalog needs in the listing itself.

One paginated ``/api/models`` listing per base model (or one for all adapters) asks, through
``expand``, for the commit sha, card data and file names of every repo, so deciding what changed
costs no request per repo. It asks for a stable order (creation time): the hub's default, trending,
moves while a client pages, so repos would skip pages. ``limit`` is the hub's page size, so a capped
listing stops itself once it holds enough repos.

Not every LoRA repo says ``library_name: peft``, so adapters are discovered in more than one listing
(each repo records which found it, in ``discovered_by``): the ``peft`` tag; the hub's
``base_model:adapter:<id>`` tag when base models are named; and repos tagged ``lora`` whose files
include an ``adapter_config.json`` (the listing returns the file names).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

import httpx2

from zoo.crawl.http import HubHttp, json_body
from zoo.crawl.query import CrawlQuery
from zoo.crawl.records import ListedRepo

PEFT_TAG = "peft"
LORA_TAG = "lora"
ADAPTER_CONFIG = "adapter_config.json"
STABLE_SORT = "createdAt"
VOLATILE_FIELDS = frozenset({"downloads", "downloadsAllTime", "likes", "trendingScore"})  # move daily
LISTING_FIELDS = (
    "author", "sha", "lastModified", "createdAt", "downloads", "likes", "tags", "library_name",
    "pipeline_tag", "gated", "private", "cardData", "siblings",
)  # fmt: skip


@dataclass(frozen=True)
class Discovery:
    """One listing that finds adapters: its name (as recorded), its tag filter, and whether a repo it
    returns must name an ``adapter_config.json`` to count (a broad tag also finds other kinds of repo)."""

    name: str
    tags: tuple[str, ...]
    needs_adapter_config: bool = False


def discoveries(query: CrawlQuery) -> list[Discovery]:
    """The listings that find ``query``'s adapters."""
    if not query.base_models:
        return [Discovery("peft", (PEFT_TAG,)), Discovery("adapter_config.json", (LORA_TAG,), True)]
    return [Discovery("base_model:adapter", (f"base_model:adapter:{base}",), True) for base in query.base_models]


def list_adapter_repos(http: HubHttp, query: CrawlQuery) -> list[ListedRepo]:
    """Every adapter repo ``query`` selects, each once, in listing order (at most ``query.limit``), with
    the listings that found it in ``discovered_by``."""
    found: dict[str, ListedRepo] = {}
    found_by: dict[str, list[str]] = {}
    for discovery in discoveries(query):
        if query.limit and len(found) >= query.limit:
            break
        for repo in _listing(http, query, discovery):
            if repo.repo_id not in found and query.limit and len(found) >= query.limit:
                break
            found.setdefault(repo.repo_id, repo)
            found_by.setdefault(repo.repo_id, []).append(discovery.name)
    return [_with_discovery(repo, found_by[repo.repo_id]) for repo in found.values()]


def _listing(http: HubHttp, query: CrawlQuery, discovery: Discovery) -> Iterator[ListedRepo]:
    """The repos of one listing, in its (stable) order."""
    params: list[tuple[str, Any]] = [("filter", tag) for tag in discovery.tags]
    params += [("expand", name) for name in LISTING_FIELDS]
    params.append(("sort", STABLE_SORT))
    if query.search:
        params.append(("search", query.search))
    if query.author:
        params.append(("author", query.author))
    if query.limit:
        params.append(("limit", query.limit))
    for item in _items(http, f"{http.endpoint}/api/models", params):
        repo = listed_repo(item)
        if discovery.needs_adapter_config and PEFT_TAG not in repo.tags and not _names_adapter_config(repo):
            continue
        yield repo


def _names_adapter_config(repo: ListedRepo) -> bool:
    return any(name == ADAPTER_CONFIG or name.endswith(f"/{ADAPTER_CONFIG}") for name in repo.files)


def _with_discovery(repo: ListedRepo, names: list[str]) -> ListedRepo:
    """The repo with how it was found; that is part of its listing digest too."""
    discovered_by = tuple(sorted(set(names)))
    digest = hashlib.sha1(f"{repo.listing_digest}\0{discovered_by}".encode()).hexdigest()  # noqa: S324
    return dataclasses.replace(repo, discovered_by=discovered_by, listing_digest=digest)


def listed_repo(item: dict[str, Any]) -> ListedRepo:
    """A listing entry as catalog data; card fields that may be a string or a list become tuples."""
    card = item.get("cardData") if isinstance(item.get("cardData"), dict) else None
    card_fields = card or {}
    gated = item.get("gated")
    license_ = card_fields.get("license")
    return ListedRepo(
        repo_id=item["id"],
        sha=item.get("sha"),
        listing_digest=_digest(item),
        last_modified=_timestamp(item.get("lastModified")),
        created_at=_timestamp(item.get("createdAt")),
        author=item.get("author"),
        downloads=item.get("downloads"),
        likes=item.get("likes"),
        license=", ".join(_names(license_)) or None,
        tags=_names(item.get("tags")),
        library_name=item.get("library_name"),
        pipeline_tag=item.get("pipeline_tag"),
        base_models=_names(card_fields.get("base_model")),
        gated=None if gated is None else str(gated).lower(),
        private=item.get("private"),
        card_data=card,
        files=tuple(
            sibling["rfilename"]
            for sibling in item.get("siblings") or []
            if isinstance(sibling, dict) and isinstance(sibling.get("rfilename"), str)
        ),
        datasets=_names(card_fields.get("datasets")),
    )


def _items(http: HubHttp, url: str, params: list[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
    """Entries of every page, following ``Link: <...>; rel="next"`` (the next URL carries the query)."""
    next_url: str | None = url
    page_params: list[tuple[str, Any]] | None = params
    while next_url is not None:
        page, link = http.get(next_url, what="repo listing", params=page_params, parse=_page)
        yield from (item for item in page if isinstance(item, dict) and isinstance(item.get("id"), str))
        next_url, page_params = (urljoin(next_url, link), None) if link else (None, None)


def _page(response: httpx2.Response) -> tuple[list[Any], str | None]:
    page = json_body(response)
    if not isinstance(page, list):
        raise ValueError(f"the hub's listing answered {type(page).__name__}, not a list of repos")
    return page, response.links.get("next", {}).get("url")


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    return tuple(str(v) for v in values if v is not None)


def _timestamp(value: Any) -> datetime | None:
    """The hub's ISO 8601 timestamps (``2024-05-01T12:00:00.000Z``); anything else counts as unknown."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _digest(item: dict[str, Any]) -> str:
    """A fingerprint of what the listing says about a repo, its daily-moving stats aside: equal digests,
    nothing to rewrite."""
    stable = {k: v for k, v in item.items() if k not in VOLATILE_FIELDS}
    return hashlib.sha1(json.dumps(stable, sort_keys=True).encode()).hexdigest()  # noqa: S324 (not security)
