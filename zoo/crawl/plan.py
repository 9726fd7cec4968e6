"""Incremental crawling: which listed repos must be read again, and which repos vanished.

The listing reports each repo's commit sha, so an unchanged repo costs nothing beyond its share of
the listing. A repo is re-read when it is new, at another commit, failed last time, was read by
older rules, or when weights must now be verified and were not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from zoo.crawl.http import HubHttp, HubRefused, json_body
from zoo.crawl.inspect import READER_VERSION
from zoo.crawl.records import ListedRepo


@dataclass(frozen=True)
class KnownAdapter:
    """What the catalog already holds about an adapter repo."""

    sha: str
    status: str
    reader_version: int
    weights_verified: bool


def fetch_reason(repo: ListedRepo, known: KnownAdapter | None, verify_weights: bool) -> str | None:
    """'new', 'updated', or None when the catalog already holds this commit as well as this crawl would."""
    if known is None:
        return "new"
    if repo.sha is None or known.sha != repo.sha or known.status == "failed" or known.reader_version < READER_VERSION:
        return "updated"
    if verify_weights and known.status == "ok" and not known.weights_verified:
        return "updated"
    return None


def plan_fetches(
    listed: Iterable[ListedRepo], known: Mapping[str, KnownAdapter], verify_weights: bool
) -> tuple[list[ListedRepo], dict[str, int]]:
    """The repos to read, and the counts of new, updated and unchanged repos."""
    to_fetch, counts = [], {"new": 0, "updated": 0, "unchanged": 0}
    for repo in listed:
        reason = fetch_reason(repo, known.get(repo.repo_id), verify_weights)
        counts[reason or "unchanged"] += 1
        if reason:
            to_fetch.append(repo)
    return to_fetch, counts


def changed_listings(listed: Iterable[ListedRepo], stored: Mapping[str, tuple[str | None, bool]]) -> list[ListedRepo]:
    """Repos whose listing entry differs from the stored one (``stored``: repo id -> (digest, removed)).

    Unchanged entries are not rewritten, so re-crawling an unchanged hub writes nothing but its run.
    """
    return [
        repo for repo in listed if repo.repo_id not in stored or stored[repo.repo_id] != (repo.listing_digest, False)
    ]


def vanished(http: HubHttp, previously_listed: Iterable[str], listed_now: Iterable[str]) -> list[str]:
    """Repos a complete listing no longer returns and the hub confirms are gone (404), sorted.

    A repo that still exists merely left the query (e.g. its card changed base model): not removed.
    """
    now = set(listed_now)
    return sorted(repo_id for repo_id in set(previously_listed) - now if _is_gone(http, repo_id))


def _is_gone(http: HubHttp, repo_id: str) -> bool:
    try:
        url = f"{http.endpoint}/api/models/{repo_id}"
        http.get(url, what=f"{repo_id} info", params={"expand": "sha"}, parse=json_body)
    except HubRefused as err:
        return err.status == 404
    return False
