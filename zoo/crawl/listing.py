"""Listing the hub's PEFT adapter repos, with every field the catalog needs in the listing itself.

One paginated ``/api/models`` listing per base model (or one for all adapters) asks, through
``expand``, for the commit sha, card data and file names of every repo, so deciding what changed
costs no request per repo.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

import httpx2

from zoo.crawl.http import HubHttp, json_body
from zoo.crawl.query import CrawlQuery
from zoo.crawl.records import ListedRepo

PEFT_TAG = "peft"
LISTING_FIELDS = (
    "author", "sha", "lastModified", "createdAt", "downloads", "likes", "tags", "library_name",
    "pipeline_tag", "gated", "private", "cardData", "siblings",
)  # fmt: skip


def list_adapter_repos(http: HubHttp, query: CrawlQuery) -> list[ListedRepo]:
    """Every PEFT repo ``query`` selects, each once, in listing order (at most ``query.limit``)."""
    found: dict[str, ListedRepo] = {}
    for tags in _tag_filters(query):
        params: list[tuple[str, Any]] = [("filter", tag) for tag in tags]
        params += [("expand", name) for name in LISTING_FIELDS]
        if query.search:
            params.append(("search", query.search))
        if query.author:
            params.append(("author", query.author))
        if query.limit:
            params.append(("limit", query.limit))
        for item in _items(http, f"{http.endpoint}/api/models", params):
            repo = listed_repo(item)
            found.setdefault(repo.repo_id, repo)
            if query.limit and len(found) >= query.limit:
                return list(found.values())
    return list(found.values())


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


def _tag_filters(query: CrawlQuery) -> list[list[str]]:
    """The hub tags adapters of base model X with ``base_model:adapter:X``."""
    if not query.base_models:
        return [[PEFT_TAG]]
    return [[PEFT_TAG, f"base_model:adapter:{base}"] for base in query.base_models]


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
    """A fingerprint of everything the listing says about a repo: equal digests, nothing to rewrite."""
    return hashlib.sha1(json.dumps(item, sort_keys=True).encode()).hexdigest()  # noqa: S324 (not security)
