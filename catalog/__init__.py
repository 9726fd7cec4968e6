"""The DuckDB catalog: versioned schema, named queries and views, Arrow in and out, Parquet export.

Imports duckdb and pyarrow only: never torch, never Prefect.
"""

from catalog.db import Catalog
from catalog.export import export_parquet

__all__ = ["Catalog", "export_parquet"]
