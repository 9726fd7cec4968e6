"""Leaderboard rank 1 is the candidate that gets registered: one ranking rule for the view, the CLI rows
and the registry. Real DuckDB file, real SQLite MLflow store, the real ``register_winners`` flow."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from catalog import Catalog
from catalog import recycle_records as records
from zoo.eval.ranking import EM_TOLERANCE

# (held-out exact match, held-out NLL) per expert. "a-exact" has the highest exact match by a hair that the
# tolerance calls a tie, so "b-closer" wins on NLL; an exact ORDER BY would rank "a-exact" first.
SCORES = {"a-exact": (0.5 + EM_TOLERANCE / 10, 2.0), "b-closer": (0.5, 1.0), "c-worse": (0.25, 0.5)}


def _store(catalog: Path, suite_hash: str, base_model: str, experts: dict[str, str]) -> None:
    with Catalog.open(catalog) as cat:
        for name, (em, nll) in SCORES.items():
            key = f"cand-{name}"
            records.store_candidate(cat, {
                "candidate_key": key, "base_model": base_model, "base_revision": None, "name": name,
                "kind": "expert", "method": None, "clustering_id": None, "cluster": None,
                "members": json.dumps([f"{experts[name]}@{'a' * 40}"]), "settings": "{}", "artifact": name,
                "created_at": datetime.now(UTC)})
            eval_key = f"eval-{name}"
            records.store_evaluation(
                cat,
                {"eval_key": eval_key, "candidate_key": key, "base_model": base_model, "suite_name": "pin",
                 "suite_hash": suite_hash, "settings": {}, "held_in_tasks": 1, "held_out_tasks": 1, "build_s": 0.1,
                 "eval_s": 0.2, "peak_mb": 1.0, "memory": "maxrss", "evaluated_at": datetime.now(UTC)},
                [{"eval_key": eval_key, "task": t, "split": s, "n": 4} for t, s in (("in", "held-in"),
                                                                                   ("out", "held-out"))],
                [{"eval_key": eval_key, "task": t, "metric": m, "value": v}
                 for t, m, v in (("in", "exact_match", 0.9), ("in", "nll", 1.0), ("out", "exact_match", em),
                                 ("out", "nll", nll))])


def test_leaderboard_rank_one_is_the_registered_candidate(tiny_zoo: Path, tiny_hub: str, tmp_path: Path) -> None:
    from flows.cli.demo_zoo import demo_zoo_suite
    from flows.register import register_winners
    from tasks.evaluation import Suite
    from tasks.leaderboard import leaderboard_rows
    from zoo.eval import write_suite
    from zoo.settings import load_settings

    meta = json.loads((tiny_zoo / "zoo.json").read_text())
    base_model = meta["base_model"]
    suite = Suite.of(write_suite(tmp_path / "pin.jsonl", demo_zoo_suite(tiny_zoo, max_per_task=1)))
    repos = [e["repo_id"] for e in meta["experts"][:3]]
    experts = dict(zip(SCORES, repos, strict=True))
    for name, repo in experts.items():
        shutil.copytree(tiny_zoo / repo, load_settings().candidates_dir / name, dirs_exist_ok=True)
    catalog, tracking_uri = tmp_path / "catalog.duckdb", f"sqlite:///{tmp_path / 'mlflow.db'}"
    _store(catalog, suite.hash, base_model, experts)

    board = leaderboard_rows(catalog, base_model, suite.hash)
    outcome = register_winners(base_model, str(suite.path), tracking_uri=tracking_uri, endpoint=tiny_hub,
                               catalog_path=str(catalog))

    with Catalog.open(catalog) as cat:
        view = cat.query("SELECT candidate FROM leaderboard WHERE suite_hash = ? ORDER BY rank",
                         [suite.hash]).column("candidate").to_pylist()
        champion = cat.query("SELECT candidate FROM champions").column("candidate").to_pylist()
    assert [r["candidate"] for r in board] == ["b-closer", "a-exact", "c-worse", "oracle"]
    assert view == ["b-closer", "a-exact", "c-worse"]
    assert outcome["registered"] and outcome["best"] == "b-closer" == champion[0]
