"""Incremental crawling: which listed repos must be read again, and which repos vanished.

The listing reports each repo's commit sha, so an unchanged repo costs nothing beyond its share of
the listing. A repo is re-read when it is new, at another commit, failed last time, was refused to
other credentials than this crawl's (the adapter, or its base model's files: a gated base), was read by older rules, or when weights must now be verified
and were not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from zoo.crawl.http import HubHttp, HubRefused, json_body
from zoo.crawl.inspect import READER_VERSION
from zoo.crawl.records import ListedRepo


@dataclass(frozen=True)
class KnownAdapter:
    """What the catalog already holds about an adapter repo (``credentials``: those that were refused the
    adapter or its base model, ``None`` when nothing was refused)."""

    sha: str
    status: str
    reader_version: int
    weights_verified: bool
    credentials: str | None = None


def fetch_reason(
    repo: ListedRepo, known: KnownAdapter | None, verify_weights: bool, credentials: str | None = None
) -> str | None:
    """'new', 'updated', or None when the catalog already holds this commit as well as this crawl would."""
    if known is None:
        return "new"
    if repo.sha is None or known.sha != repo.sha or known.status == "failed" or known.reader_version < READER_VERSION:
        return "updated"
    if known.credentials is not None and known.credentials != credentials:
        return "updated"  # refused something (the adapter, or its base model's files) to other credentials
    if verify_weights and known.status == "ok" and not known.weights_verified:
        return "updated"
    return None


def plan_fetches(
    listed: Iterable[ListedRepo],
    known: Mapping[str, KnownAdapter],
    verify_weights: bool,
    credentials: str | None = None,
) -> tuple[list[ListedRepo], dict[str, int]]:
    """The repos to read (by a crawl with ``credentials``), and the counts of new, updated and unchanged repos."""
    to_fetch, counts = [], {"new": 0, "updated": 0, "unchanged": 0}
    for repo in listed:
        reason = fetch_reason(repo, known.get(repo.repo_id), verify_weights, credentials)
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


@dataclass(frozen=True)
class Vanished:
    """Repos a complete listing no longer returns: ``removed`` (sorted) and ``renamed`` (old id -> new id)."""

    removed: list[str]
    renamed: dict[str, str]


def vanished(http: HubHttp, previously_listed: Iterable[str], listed_now: Iterable[str]) -> Vanished:
    """Repos gone from the listing that the hub confirms are gone, or that now redirect to another id.

    A repo that still exists merely left the query (e.g. its card changed base model): not removed.
    """
    removed, renamed = [], {}
    for repo_id in sorted(set(previously_listed) - set(listed_now)):
        fate = _fate(http, repo_id)
        if fate is None:
            removed.append(repo_id)
        elif fate != repo_id:
            renamed[repo_id] = fate
    return Vanished(removed, renamed)


def _fate(http: HubHttp, repo_id: str) -> str | None:
    """The repo's id now (another one when it was renamed: the hub redirects), or None if it is gone.

    The hub answers a missing repo 404, or 401 ``RepoNotFound`` to an anonymous client.
    """
    try:
        url = f"{http.endpoint}/api/models/{repo_id}"
        info = http.get(url, what=f"{repo_id} info", params={"expand": "sha"}, parse=json_body)
    except HubRefused as err:
        if err.status == 404 or (err.status == 401 and err.code == "RepoNotFound"):
            return None
        return repo_id
    return info.get("id", repo_id) if isinstance(info, dict) else repo_id
