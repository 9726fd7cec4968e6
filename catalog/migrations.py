"""Versioned schema: the numbered files ``catalog/sql/NNN_name.sql`` are applied once each, in order.

A catalog file therefore carries its own schema version (``schema_migrations``), and an old file is
brought up to date when it is opened by a newer ``zoo``.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).parent / "sql"
_MIGRATION_NAME = re.compile(r"^(?P<version>\d{3})_[a-z0-9_]+\.sql$")


def available_migrations() -> list[tuple[int, Path]]:
    """``(version, file)`` of every migration shipped with this code, in order."""
    found = []
    for path in SQL_DIR.glob("*.sql"):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match["version"]), path))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this catalog lacks, each in its own transaction; return the versions applied."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL)")
    applied = {version for (version,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    shipped = available_migrations()
    newest = max((version for version, _ in shipped), default=0)
    if applied and max(applied) > newest:
        raise RuntimeError(
            f"this catalog has schema version {max(applied)} but this zoo knows only up to {newest}: upgrade zoo"
        )
    done = []
    for version, path in shipped:
        if version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(path.read_text())
            con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, path.name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        done.append(version)
    return done
