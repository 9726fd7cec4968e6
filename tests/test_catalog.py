"""The DuckDB catalog on plain data: migrations, upserts, crawl records, views and Parquet export."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from catalog import Catalog, export_parquet
from catalog import crawl_records as records
from catalog.migrations import available_migrations

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def _repo(repo_id: str, **fields: object) -> dict[str, object]:
    return {"repo_id": repo_id, "sha": "a" * 40, "license": "mit", "base_models": ["org/base"], **fields}


def _adapter(repo_id: str, status: str = "ok", **fields: object) -> dict[str, object]:
    return {
        "repo_id": repo_id, "sha": "a" * 40, "reader_version": 1, "status": status, "weights_verified": False, **fields
    }  # fmt: skip


def _module(repo_id: str, module: str, rank: int = 8) -> dict[str, object]:
    return {"repo_id": repo_id, "module": module, "rank": rank, "d_in": 64, "d_out": 64, "dtype": "F32"}


@pytest.fixture
def cat() -> Catalog:
    return Catalog.in_memory()


def test_migrations_apply_once_and_record_their_version(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    Catalog.open(path).close()
    with Catalog.open(path) as again:
        versions = again.read_table("schema_migrations").column("version").to_pylist()
    assert versions == [version for version, _ in available_migrations()]


def test_a_catalog_from_a_newer_zoo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    with Catalog.open(path) as cat:
        cat.execute("INSERT INTO schema_migrations VALUES (999, '999_future.sql')")
    with pytest.raises(RuntimeError, match="upgrade zoo"):
        Catalog.open(path)


def test_read_only_open_of_a_missing_catalog_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="zoo crawl"):
        Catalog.open(tmp_path / "missing.duckdb", read_only=True)


def test_read_only_catalog_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "c.duckdb"
    Catalog.open(path).close()
    with Catalog.open(path, read_only=True) as cat, pytest.raises(duckdb.Error):
        cat.query("DELETE FROM adapters")


def test_a_reader_waits_for_a_writer_in_another_process_but_not_for_ever(tmp_path: Path) -> None:
    path, held = tmp_path / "c.duckdb", tmp_path / "held"
    Catalog.open(path).close()
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, time, duckdb
        con = duckdb.connect({str(path)!r})
        pathlib.Path({str(held)!r}).touch()
        time.sleep(3)
        con.close()
    """)])
    try:
        while not held.exists():
            assert writer.poll() is None, "the writer exited before holding the catalog"
            time.sleep(0.05)
        with pytest.raises(duckdb.IOException, match="Parquet export"):
            Catalog.open(path, read_only=True, wait_s=0.3)
        with Catalog.open(path, read_only=True, wait_s=60) as cat:
            assert "adapters" in cat.tables()
    finally:
        writer.wait(timeout=60)


def test_upsert_replaces_by_primary_key_and_stores_json_canonically(cat: Catalog) -> None:
    cat.upsert("hub_repos", [_repo("a/x", card_data={"b": 1, "a": [1, 2]}, removed=False)])
    cat.upsert("hub_repos", [_repo("a/x", card_data={"a": [1, 2], "b": 1}, license="mit", removed=False)])
    rows = cat.read_table("hub_repos").to_pylist()
    assert len(rows) == 1
    assert rows[0]["card_data"] == '{"a":[1,2],"b":1}' and rows[0]["license"] == "mit"


def test_unknown_columns_are_refused(cat: Catalog) -> None:
    with pytest.raises(KeyError, match="no column"):
        cat.upsert("hub_repos", [{"repo_id": "a/x", "stars": 5}])


def test_table_names_are_checked_against_the_schema(cat: Catalog) -> None:
    with pytest.raises(KeyError, match="no table"):
        cat.read_table('adapters"; DROP TABLE adapters; --')


def test_store_adapters_replaces_modules_of_the_stored_repos_only(cat: Catalog) -> None:
    modules = [_module("a/x", "m1"), _module("a/x", "m2"), _module("a/y", "m1")]
    records.store_adapters(cat, [_adapter("a/x"), _adapter("a/y")], modules)
    records.store_adapters(cat, [_adapter("a/x", r=4)], [_module("a/x", "m3", rank=4)])
    modules = cat.read_table("adapter_modules").to_pylist()
    assert [(m["repo_id"], m["module"]) for m in modules] == [("a/x", "m3"), ("a/y", "m1")]


def test_a_failed_write_leaves_the_previous_state(cat: Catalog) -> None:
    records.store_adapters(cat, [_adapter("a/x")], [_module("a/x", "m1")])
    before = {t: cat.read_table(t) for t in cat.tables()}
    with pytest.raises(duckdb.Error):
        records.store_adapters(cat, [_adapter("a/x", r=4)], [_module("a/x", "m1"), _module("a/x", "m1")])
    assert {t: cat.read_table(t) for t in cat.tables()} == before


def test_listing_revives_a_removed_repo_and_settling_marks_vanished_ones(cat: Catalog) -> None:
    records.store_listing(cat, [_repo("a/x"), _repo("a/y")], [{"repo_id": "a/x", "dataset_id": "d/1"}])
    records.settle_listing(cat, "scope", ["a/x", "a/y"], [])
    records.settle_listing(cat, "scope", ["a/x"], ["a/y"])
    removed = {r["repo_id"]: r["removed"] for r in cat.read_table("hub_repos").to_pylist()}
    assert removed == {"a/x": False, "a/y": True}
    assert records.listing_members(cat, "scope") == ["a/x"]
    records.store_listing(cat, [_repo("a/y")], [])
    assert cat.query("SELECT removed FROM hub_repos WHERE repo_id = 'a/y'").column(0).to_pylist() == [False]


def test_runs_are_closed_with_counters_and_dead_runs_are_marked_interrupted(cat: Catalog) -> None:
    records.start_run(cat, "r1", "http://hub", {"search": None}, NOW)
    records.start_run(cat, "r2", "http://hub", {"search": None}, NOW)
    records.finish_run(cat, "r2", "completed", {"seen": 5, "unchanged": 5, "http_requests": 1}, NOW)
    runs = {r["run_id"]: r for r in cat.read_table("crawl_runs").to_pylist()}
    assert runs["r1"]["status"] == "failed" and "interrupted" in runs["r1"]["error"]
    assert (runs["r2"]["status"], runs["r2"]["seen"], runs["r2"]["unchanged"], runs["r2"]["http_requests"]) == (
        "completed", 5, 5, 1,
    )  # fmt: skip


def test_views_answer_the_common_questions(cat: Catalog) -> None:
    records.store_listing(
        cat,
        [_repo("a/x"), _repo("a/y", license="apache-2.0"), _repo("a/z", base_models=None), _repo("a/gone")],
        [{"repo_id": "a/x", "dataset_id": "d/2"}, {"repo_id": "a/x", "dataset_id": "d/1"}],
    )
    records.store_adapters(
        cat,
        [
            _adapter("a/x", r=8),
            _adapter("a/y", r=16),
            _adapter("a/z", "unsupported", reason="DoRA", declared_base_model="org/other"),
            _adapter("a/gone", r=4),
        ],
        [],
    )
    records.settle_listing(cat, "s", ["a/x", "a/y", "a/z"], ["a/gone"])
    per_base = cat.query("SELECT base_model, adapters, usable, broken, ranks FROM adapters_per_base_model").to_pylist()
    assert per_base == [
        {"base_model": "org/base", "adapters": 2, "usable": 2, "broken": 0, "ranks": [8, 16]},
        {"base_model": "org/other", "adapters": 1, "usable": 0, "broken": 1, "ranks": None},
    ]
    per_license = cat.query("SELECT license, adapters FROM adapters_per_license").to_pylist()
    assert per_license == [{"license": "mit", "adapters": 2}, {"license": "apache-2.0", "adapters": 1}]
    broken = cat.query("SELECT repo_id, status, reason FROM broken_adapters").to_pylist()
    assert broken == [{"repo_id": "a/z", "status": "unsupported", "reason": "DoRA"}]
    overview = cat.query("SELECT datasets FROM adapter_overview WHERE repo_id = 'a/x'").column(0).to_pylist()
    assert overview == [["d/1", "d/2"]]


def test_parquet_export_holds_every_table_in_key_order(cat: Catalog, tmp_path: Path) -> None:
    records.store_adapters(cat, [_adapter("b/y"), _adapter("a/x")], [_module("b/y", "m"), _module("a/x", "m")])
    written = export_parquet(cat, tmp_path / "out")
    assert sorted(p.stem for p in written) == cat.tables()
    adapters = pq.read_table(tmp_path / "out" / "adapters.parquet")
    assert adapters.column("repo_id").to_pylist() == ["a/x", "b/y"]
    assert adapters.equals(cat.read_table("adapters"))
