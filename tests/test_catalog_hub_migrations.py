"""Migrations 007 and 008 on a real DuckDB file written by 006: rows kept, keys widened, old records marked."""

from __future__ import annotations

from pathlib import Path

from conftest import catalog_at_version

from catalog import Catalog

GATED = "unchecked: base model org/llama not readable (org/llama config.json: HTTP 401 GatedRepo)"


def _catalog_at_version_6(path: Path) -> None:
    con = catalog_at_version(path, 6)
    con.execute("INSERT INTO adapters BY NAME SELECT * FROM (VALUES "
                "('org/on-gated', 's', 2, 'ok', ?, false), ('org/fits', 's', 2, 'ok', 'fits', false), "
                "('org/on-missing', 's', 2, 'ok', 'unchecked: base model org/x not readable (org/x info: HTTP 404)', "
                "false)) t(repo_id, sha, reader_version, status, base_check, weights_verified)", [GATED])
    con.execute("INSERT INTO adapter_fingerprints BY NAME SELECT 'org/fits' AS repo_id, 's' AS sha, 1 AS version, "
                "'org/llama' AS base_model, 'ok' AS status")
    con.execute("INSERT INTO cluster_members VALUES ('c', 'org/fits', 's', 0)")
    con.close()


def test_old_records_keep_their_rows_and_gated_bases_are_read_once_more(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _catalog_at_version_6(path)
    with Catalog.open(path) as cat:
        rows = cat.query("SELECT repo_id, credentials FROM adapters").to_pylist()
        credentials = {r["repo_id"]: r["credentials"] for r in rows}
        fingerprint = cat.query("SELECT repo_id, subfolder, status FROM adapter_fingerprints").to_pylist()
        member = cat.query("SELECT repo_id, subfolder, cluster FROM cluster_members").to_pylist()
        keys = {t: cat.primary_key(t) for t in ("adapter_fingerprints", "cluster_members")}
    # only the adapter whose base refused the crawl's credentials is read again (by any next crawl)
    assert credentials == {"org/on-gated": "unknown", "org/fits": None, "org/on-missing": None}
    assert fingerprint == [{"repo_id": "org/fits", "subfolder": "", "status": "ok"}]
    assert member == [{"repo_id": "org/fits", "subfolder": "", "cluster": 0}]
    assert "subfolder" in keys["adapter_fingerprints"] and "subfolder" in keys["cluster_members"]
