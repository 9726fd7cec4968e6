"""The leaderboard of one base model and suite, from the catalog: rows for people, the CLI and the UI.

Ranks come from ``zoo.eval.ranking`` (the rule the registry crowns a champion by) and are written back
to the catalog, so the ``leaderboard`` view shows the same order. The oracle (per task, the single
expert ranked first on that task, ``zoo.eval.ranking.best_per_task``) is derived from the experts'
stored task scores: an upper reference, never a candidate for registration. Candidates dropped by the
evaluation's first pass (``zoo.eval.screening``) follow, unranked, with the held-in NLL they were dropped on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from zoo.eval.ranking import best_per_task, rank, score_of
from zoo.eval.results import CandidateResult, TaskScore
from zoo.eval.suite import HELD_IN, HELD_OUT

COLUMNS = ("rank", "candidate", "kind", "held_in_em", "held_out_em", "held_in_nll", "held_out_nll", "seconds",
           "peak_mb", "note")


def leaderboard_rows(catalog_path: Path, base_model: str, suite_hash: str, eval_keys: list[str] | None = None
                     ) -> list[dict[str, Any]]:
    """Every evaluation of ``base_model`` on the suite ranked and the ranks stored; returns the rows (only
    ``eval_keys`` when given, numbered from 1 in the same order), plus the oracle row (only when no single
    expert was screened out) and the rows of candidates screened out on this suite (``rank`` None,
    ``screened_out`` true)."""
    with Catalog.open(catalog_path) as cat:
        ranked = rank(records.leaderboard(cat, base_model, suite_hash), lambda r: score_of(r["held_out"]),
                      lambda r: r["candidate"])
        records.store_ranks(cat, {r["eval_key"]: place for place, r in enumerate(ranked, start=1)})
        if eval_keys is not None:
            keep = set(eval_keys)
            ranked = [r for r in ranked if r["eval_key"] in keep]
        experts = [r for r in ranked if r["kind"] == "expert"]
        tasks = records.task_metrics(cat, [r["eval_key"] for r in experts])
        dropped = records.screened_out(cat, base_model, suite_hash)
    rows = [{**r, "rank": place} for place, r in enumerate(ranked, start=1)]
    if experts and not any(r["kind"] == "expert" for r in dropped):  # an oracle over some experts is none
        rows.append(_oracle_row(experts, tasks))
    return rows + [_screened_row(r) for r in dropped]


def _screened_row(screening: dict[str, Any]) -> dict[str, Any]:
    nll = screening["held_in_nll"]
    return {"rank": None, "candidate": screening["name"], "kind": screening["kind"], "eval_key": None,
            "held_in_nll": _round(nll), "held_in": {"nll": nll}, "held_out": {}, "screened_out": True,
            "note": f"screened out ({screening['examples']} ex.)"}


def _oracle_row(experts: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    by_eval: dict[str, list[TaskScore]] = {}
    for t in tasks:
        by_eval.setdefault(t["eval_key"], []).append(TaskScore(t["task"], t["split"], t["n"], {
            name: math.nan if value is None else value for name, value in t["metrics"].items()}))
    results = [CandidateResult(name=e["candidate"], kind="expert", key=e["eval_key"], tasks=by_eval[e["eval_key"]])
               for e in experts if e["eval_key"] in by_eval]
    means = best_per_task(results, "oracle").split_means()
    return {"rank": None, "candidate": "oracle", "kind": "oracle", "note": "best single expert per task",
            "held_in_em": _round(means[HELD_IN].get("exact_match")),
            "held_out_em": _round(means[HELD_OUT].get("exact_match")),
            "held_in_nll": _round(means[HELD_IN].get("nll")), "held_out_nll": _round(means[HELD_OUT].get("nll")),
            "held_in": means[HELD_IN], "held_out": means[HELD_OUT]}


@task(name="publish leaderboard", cache_policy=NO_CACHE)
def publish_leaderboard(rows: list[dict[str, Any]], title: str, run_links: dict[str, str] | None = None) -> None:
    """A table artifact of the leaderboard, and a markdown one linking each candidate to its MLflow run."""
    create_table_artifact(key="leaderboard", table=[{c: r.get(c) for c in COLUMNS} for r in rows],
                          description=title)
    if run_links:
        lines = [f"# {title}", "", "| rank | candidate | held-out EM | MLflow run |", "|---|---|---|---|"]
        for r in rows:
            link = run_links.get(r.get("eval_key") or "")
            lines.append(f"| {r['rank'] or ''} | {r['candidate']} | {r.get('held_out_em')} | "
                         + (f"[run]({link})" if link else "") + " |")
        create_markdown_artifact(key="leaderboard-runs", markdown="\n".join(lines), description=title)


def _round(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)
