"""What a crawl reports: progress (a Prefect progress artifact and the in-process listeners of
``tasks.progress``, such as the CLI's progress bar) with the hub's requests used and remaining per
rate-limit bucket and an ETA, the run's counters, and a summary of outcomes, refusal reasons and quota
use as table artifacts.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from catalog.crawl_records import RUN_COUNTERS
from tasks.progress import notify
from zoo.crawl import AdapterFacts, HubHttp
from zoo.crawl.pacing import crawl_eta_s, usage_line

TOP_REASONS = 10


@dataclass
class CrawlTally:
    """The run's counters as batches come in, and why adapters read in this run were refused."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_COUNTERS, 0))
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    read: int = 0

    def add(self, facts: Sequence[AdapterFacts]) -> None:
        self.read += len({f.repo_id for f in facts})  # repos: one may hold several adapters
        self.counts["failed"] += sum(f.status == "failed" for f in facts)
        self.refused.update((f.status, f.reason or "") for f in facts if f.status != "ok")


class CrawlProgress:
    """Reports ``phase``, repos read, the hub's quota use and an ETA to the Prefect UI and to local listeners.

    ``repo_read`` is called from the reading threads, once per repo: it moves the local listeners (the
    CLI's bar) only. ``report`` is the flow's, once per phase and batch: it also updates the Prefect
    artifact (a call to its API, kept out of the reading threads).
    """

    def __init__(self, http: HubHttp) -> None:
        self.http = http
        self.percent = 0.0
        self.phase, self.done, self.total = "listing", 0, 0
        self.started, self.blocked_at_start = time.monotonic(), 0.0
        self._lock = threading.Lock()
        self.artifact_id: UUID = create_progress_artifact(
            progress=self.percent, key="crawl-progress", description="Adapter repos read in this crawl"
        )

    def report(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            if phase != self.phase:  # the ETA is of the reading, not of the listing before it
                self.started, self.blocked_at_start = time.monotonic(), self.http.pacer.blocked_s
            self.phase, self.done, self.total = phase, done, total
            description = self.describe()
        percent = 100.0 * done / total if total else (100.0 if phase == "done" else 0.0)
        if percent != self.percent:  # one API call per change, not per report
            self.percent = percent
            update_progress_artifact(self.artifact_id, percent, description=description)
        notify(description, done, total)

    def repo_read(self) -> None:
        with self._lock:
            self.done += 1
            description, done, total = self.describe(), self.done, self.total
        notify(description, done, total)

    def describe(self) -> str:
        """``reading: 120/1000 repos; resolvers 240 used, 2760 left of 3000/300s; ETA 2m 56s``."""
        usage = self.http.usage()
        parts = [f"{self.phase}: {self.done}/{self.total} repos"]
        if usage:
            parts.append(usage_line(usage))
        busy_s = time.monotonic() - self.started - (self.http.pacer.blocked_s - self.blocked_at_start)
        eta = crawl_eta_s(self.total - self.done, self.done, busy_s, usage)
        if self.phase == "reading" and eta is not None:
            parts.append(f"ETA {int(eta // 60)}m {int(eta % 60):02d}s")
        return "; ".join(parts)


@task(name="publish crawl summary", cache_policy=NO_CACHE)
def publish_summary(counts: dict[str, int], reasons: Counter[tuple[str, str]], http: HubHttp) -> None:
    """Three table artifacts: the run's counters, the most common reasons adapters were refused, and the
    hub's rate-limit buckets as the crawl left them."""
    create_table_artifact(
        key="crawl-quota",
        table=[dataclasses.asdict(bucket) for bucket in http.usage()],
        description="Requests used and left per rate-limit bucket of the hub (as its RateLimit headers said).",
    )
    create_table_artifact(
        key="crawl-summary",
        table=[{"outcome": name, "repos": counts.get(name, 0)} for name in RUN_COUNTERS],
        description="Repos seen, new, updated, unchanged, failed and removed in this crawl.",
    )
    create_table_artifact(
        key="crawl-refusal-reasons",
        table=[
            {"status": status, "reason": reason, "repos": n} for (status, reason), n in reasons.most_common(TOP_REASONS)
        ],
        description="Top reasons why adapters read in this crawl are not usable (failed, invalid, unsupported).",
    )
