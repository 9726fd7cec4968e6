"""Parquet export of every table, so the catalog can be read anywhere (the DuckDB 1.x CLI cannot open 2.0 files)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from catalog.db import Catalog


def export_parquet(cat: Catalog, directory: str | Path) -> list[Path]:
    """Write ``<table>.parquet`` per table into ``directory`` (created), rows in primary-key order."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in cat.tables():
        path = out / f"{table}.parquet"
        pq.write_table(cat.read_table(table), path)
        written.append(path)
    return written
