"""``zoo catalog``: the DuckDB catalog's files for other tools."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The DuckDB catalog of the hub's adapters.", no_args_is_help=True)


@app.command()
def export(
    directory: Path = typer.Argument(..., file_okay=False, help="Folder to write <table>.parquet files into."),
    catalog: Path | None = typer.Option(None, help="Catalog file (default: ZOO_HOME/catalog.duckdb)."),
) -> None:
    """Export every table of the catalog to Parquet (readable by DuckDB, pandas, Spark, ...)."""
    from catalog import Catalog, export_parquet
    from zoo.settings import load_settings

    try:
        with Catalog.open(catalog or load_settings().catalog_path, read_only=True) as cat:
            written = export_parquet(cat, directory)
    except FileNotFoundError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from err
    for path in written:
        typer.echo(path)
