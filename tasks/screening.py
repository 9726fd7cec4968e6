"""Prefect tasks of the evaluation's first pass (``zoo.eval.screening``): screen, store, read back, choose.

A screening is keyed by the candidate, the suite's content, the sample size and the scoring version, so a
re-run screens only new candidates, and which candidates went on to the full pass can always be
recomputed from the catalog (the choice depends on the stored numbers only).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from tasks.candidates import spec_from_row
from tasks.evaluation import SCORING_VERSION, Suite
from zoo.candidates.store import CandidateStore
from zoo.content import content_key
from zoo.eval.screening import Screened, screening_sample, survivors
from zoo.settings import load_settings

ALWAYS = ("base", "uniform-merge")  # reference rows the leaderboard compares every winner with


def screen_key(candidate_key: str, suite: Suite, per_task: int) -> str:
    return content_key({"candidate": candidate_key, "suite": suite.hash, "screen_per_task": per_task,
                        "scoring": SCORING_VERSION})


@task(name="screen candidates", tags=["gpu", "evaluate"], retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE)
def screen_candidates(catalog_path: Path, store: CandidateStore, base_dir: Path, candidates: Sequence[dict[str, Any]],
                      suite: Suite, per_task: int, device: str) -> None:
    """The NLL of each candidate not yet screened on ``per_task`` examples of each held-in task, stored (the
    candidates' folders are fetched from the candidate ``store`` first)."""
    from zoo.eval import evaluate

    keys = [screen_key(c["candidate_key"], suite, per_task) for c in candidates]
    with Catalog.open(catalog_path, read_only=True) as cat:
        done = records.present_keys(cat, "screenings", "screen_key", keys)
    todo = [(c, k) for c, k in zip(candidates, keys, strict=True) if k not in done]
    if not todo:
        return
    sample = screening_sample(suite.examples(), per_task)
    for c, _ in todo:
        store.fetch(c["artifact"])
    started = time.perf_counter()
    result = evaluate([spec_from_row(c) for c, _ in todo], sample, base_dir, candidates_dir=store.working_dir,
                      device=device, oracle=False, generate=False, routing_accuracy=False,
                      threads=load_settings().torch_threads)
    seconds = (time.perf_counter() - started) / len(todo)
    rows = [{"screen_key": key, "candidate_key": c["candidate_key"],
             "base_model": c["base_model"], "suite_hash": suite.hash, "per_task": per_task, "examples": len(sample),
             "held_in_nll": r.split_means()["held-in"].get("nll"), "seconds": seconds,
             "screened_at": datetime.now(UTC)}
            for (c, key), r in zip(todo, result.candidates, strict=True)]
    with Catalog.open(catalog_path) as cat:
        cat.upsert("screenings", rows)


@task(name="choose survivors", cache_policy=NO_CACHE)
def screened_survivors(catalog_path: Path, candidates: Sequence[dict[str, Any]], suite: Suite, per_task: int,
                       keep: int) -> list[dict[str, Any]]:
    """The candidates (rows) that go on to the full pass, by their stored screening (``zoo.eval.screening``)."""
    keys = {screen_key(c["candidate_key"], suite, per_task): c for c in candidates}
    with Catalog.open(catalog_path, read_only=True) as cat:
        stored = cat.query("SELECT screen_key, held_in_nll FROM screenings WHERE screen_key IN (SELECT unnest(?))",
                           [list(keys)]).to_pylist()
    nll = {r["screen_key"]: r["held_in_nll"] for r in stored}
    screened = [Screened(c["name"], c["kind"], float("nan") if nll.get(k) is None else nll[k])
                for k, c in keys.items()]
    names = set(survivors(screened, keep, ALWAYS))
    return [c for c in candidates if c["name"] in names]
