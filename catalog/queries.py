"""Named queries: one SQL file per query under ``catalog/sql/queries``, with ``$name`` parameters bound."""

from __future__ import annotations

from functools import cache
from pathlib import Path

QUERIES_DIR = Path(__file__).parent / "sql" / "queries"


@cache
def named_query(name: str) -> str:
    """The text of ``catalog/sql/queries/<name>.sql``."""
    path = QUERIES_DIR / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no named query {name!r} in {QUERIES_DIR}")
    return path.read_text()
