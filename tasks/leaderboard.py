"""The leaderboard of one base model and suite, from the catalog: rows for people, the CLI and the UI.

The oracle (per task, the single expert with the best exact match, ties broken by NLL, as
``zoo.eval.best_per_task`` picks it) is derived here from the experts' stored task scores: an upper
reference, never a candidate for registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.catalog_turn import open_catalog

COLUMNS = ("rank", "candidate", "kind", "held_in_em", "held_out_em", "held_in_nll", "held_out_nll", "seconds",
           "peak_mb")


def leaderboard_rows(catalog_path: Path, base_model: str, suite_hash: str, eval_keys: list[str] | None = None
                     ) -> list[dict[str, Any]]:
    """Ranked rows of the ``leaderboard`` view (only ``eval_keys`` when given), plus the oracle row."""
    with open_catalog(catalog_path) as cat:
        rows = cat.query("SELECT * FROM leaderboard WHERE base_model = ? AND suite_hash = ? ORDER BY rank",
                         [base_model, suite_hash]).to_pylist()
        if eval_keys is not None:
            keep = set(eval_keys)
            rows = [r for r in rows if r["eval_key"] in keep]
        oracle = cat.query(
            "SELECT split, avg(exact_match) AS em, avg(nll) AS nll FROM ("
            " SELECT t.task, t.split, t.exact_match, t.nll"
            " FROM evaluation_tasks t JOIN leaderboard l USING (eval_key)"
            " WHERE l.base_model = $base AND l.suite_hash = $suite AND l.kind = 'expert'"
            " AND ($keys IS NULL OR list_contains($keys, t.eval_key))"
            " QUALIFY row_number() OVER (PARTITION BY t.task"
            " ORDER BY t.exact_match DESC NULLS LAST, t.nll ASC NULLS LAST, t.eval_key) = 1)"
            " GROUP BY split", {"base": base_model, "suite": suite_hash, "keys": eval_keys}).to_pylist()
    for i, row in enumerate(rows, start=1):
        row["rank"] = i
    if oracle:
        split = {r["split"]: r for r in oracle}
        rows.append({"rank": None, "candidate": "oracle", "kind": "oracle",
                     "held_in_em": _round(split.get("held-in", {}).get("em")),
                     "held_out_em": _round(split.get("held-out", {}).get("em")),
                     "held_in_nll": _round(split.get("held-in", {}).get("nll")),
                     "held_out_nll": _round(split.get("held-out", {}).get("nll"))})
    return rows


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
    return None if x is None else round(x, 4)

