"""What a crawl reports: progress (a Prefect progress artifact and the in-process listeners of
``tasks.progress``, such as the CLI's progress bar), the run's counters, and a summary of outcomes and
refusal reasons as table artifacts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from catalog.crawl_records import RUN_COUNTERS
from tasks.progress import notify
from zoo.crawl import AdapterFacts

TOP_REASONS = 10


@dataclass
class CrawlTally:
    """The run's counters as batches come in, and why adapters read in this run were refused."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_COUNTERS, 0))
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    read: int = 0

    def add(self, facts: Sequence[AdapterFacts]) -> None:
        self.read += len(facts)
        self.counts["failed"] += sum(f.status == "failed" for f in facts)
        self.refused.update((f.status, f.reason or "") for f in facts if f.status != "ok")


class CrawlProgress:
    """Reports ``phase`` and repos read to the Prefect UI and to local listeners."""

    def __init__(self) -> None:
        self.percent = 0.0
        self.artifact_id: UUID = create_progress_artifact(
            progress=self.percent, key="crawl-progress", description="Adapter repos read in this crawl"
        )

    def report(self, phase: str, done: int, total: int) -> None:
        percent = 100.0 * done / total if total else (100.0 if phase == "done" else 0.0)
        if percent != self.percent:  # one API call per change, not per report
            self.percent = percent
            update_progress_artifact(self.artifact_id, percent, description=f"{phase}: {done}/{total} repos")
        notify(phase, done, total)


@task(name="publish crawl summary", cache_policy=NO_CACHE)
def publish_summary(counts: dict[str, int], reasons: Counter[tuple[str, str]]) -> None:
    """Two table artifacts: the run's counters, and the most common reasons adapters were refused."""
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
