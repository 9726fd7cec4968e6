"""Migration 004 on a real DuckDB file: wide metric columns become ``evaluation_metrics`` rows, nothing lost."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from conftest import catalog_at_version

from catalog import Catalog
from catalog import recycle_records as records


def _catalog_at_version_3(path: Path, held_out_nll: float = 2.0) -> None:
    """A catalog as 003 left it, holding two evaluations with their wide metric columns."""
    con = catalog_at_version(path, 3)
    con.execute("INSERT INTO candidates VALUES ('c1', 'org/base', NULL, 'base', 'base', NULL, NULL, NULL, '[]', '{}', "
                "NULL, now()), ('c2', 'org/base', NULL, 'ties', 'merge', 'ties', NULL, NULL, '[\"a@1\"]', '{}', 'x', "
                "now())")
    con.execute("INSERT INTO evaluations VALUES "
                "('e1', 'c1', 'org/base', 'demo', 'h', '{}', 0.5, 0.25, 1.5, ?, 2, 1, 1, 1, 10, 'maxrss', NULL, now(), "
                "NULL), ('e2', 'c2', 'org/base', 'demo', 'h', '{}', 1.0, NULL, 0.5, NULL, 1, 0, 1, 1, 10, 'maxrss', "
                "NULL, now(), NULL)", [held_out_nll])
    con.execute("INSERT INTO evaluation_tasks VALUES "
                "('e1', 't1', 'held-in', 4, 0.25, 1.0, NULL, NULL, NULL), "
                "('e1', 't2', 'held-in', 4, 0.75, 2.0, NULL, NULL, NULL), "
                "('e1', 't3', 'held-out', 4, 0.25, 2.0, 0.5, NULL, NULL), "
                "('e2', 't1', 'held-in', 4, 1.0, 0.5, NULL, NULL, NULL)")
    con.close()


def test_existing_evaluations_move_to_long_metric_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _catalog_at_version_3(path)
    with Catalog.open(path) as cat:
        moved = cat.query("SELECT eval_key, task, metric, value FROM evaluation_metrics ORDER BY ALL").to_pylist()
        wide = {r["column_name"] for r in cat.query(
            "SELECT column_name FROM duckdb_columns() WHERE table_name IN ('evaluations', 'evaluation_tasks')"
        ).to_pylist()}
        board = records.leaderboard(cat, "org/base", "h")
        means = records.evaluation_means(cat, ["e1", "e2"])
        tasks = records.evaluation_tasks(cat, "e1")
    assert [(r["task"], r["metric"], r["value"]) for r in moved if r["eval_key"] == "e1"] == [
        ("t1", "exact_match", 0.25), ("t1", "nll", 1.0), ("t2", "exact_match", 0.75), ("t2", "nll", 2.0),
        ("t3", "exact_match", 0.25), ("t3", "nll", 2.0)]
    assert len(moved) == 8
    assert not wide & {"exact_match", "nll", "held_in_exact_match", "held_out_exact_match", "held_in_nll",
                       "held_out_nll"}
    assert means["e1"] == {"held-in": {"exact_match": 0.5, "nll": 1.5}, "held-out": {"exact_match": 0.25, "nll": 2.0}}
    assert means["e2"] == {"held-in": {"exact_match": 1.0, "nll": 0.5}}
    e1 = next(r for r in board if r["eval_key"] == "e1")
    assert (e1["held_in_em"], e1["held_out_em"], e1["held_in_nll"], e1["held_out_nll"]) == (0.5, 0.25, 1.5, 2.0)
    assert e1["held_out"] == {"exact_match": 0.25, "nll": 2.0} and e1["rank"] is None  # ranked by the flows
    assert tasks[2]["metrics"] == {"exact_match": 0.25, "nll": 2.0} and tasks[2]["routing_skill"] == 0.5


def test_a_catalog_whose_means_disagree_with_its_task_rows_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "odd.duckdb"
    _catalog_at_version_3(path, held_out_nll=3.0)
    with pytest.raises(duckdb.Error, match="evaluation e1: its stored split means differ"):
        Catalog.open(path)
    con = duckdb.connect(str(path))
    assert con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (3,)
    assert con.execute("SELECT held_out_nll FROM evaluations WHERE eval_key = 'e1'").fetchone() == (3.0,)
    con.close()


def test_stored_ranks_show_in_the_leaderboard_view(tmp_path: Path) -> None:
    path = tmp_path / "ranked.duckdb"
    _catalog_at_version_3(path)
    with Catalog.open(path) as cat:
        records.store_ranks(cat, {"e1": 2, "e2": 1})
        ranks = cat.query("SELECT candidate, rank FROM leaderboard ORDER BY rank").to_pylist()
    assert ranks == [{"candidate": "ties", "rank": 1}, {"candidate": "base", "rank": 2}]
