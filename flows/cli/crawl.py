"""``zoo crawl``, ``zoo serve`` and ``zoo sql``: crawl the hub once, serve the scheduled deployments,
query the catalog.

Heavy libraries (Prefect, DuckDB) are imported inside the commands, after the environment is set,
so that ``zoo --help`` stays instant and Prefect reads the project's settings.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pyarrow as pa
    from rich.progress import Progress
    from prefect.deployments.runner import RunnerDeployment

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS_FILE = REPO_ROOT / "infra" / "prefect.yaml"
console = Console()


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def crawl(
    endpoint: str | None = typer.Option(None, help="Hub URL (default: HF_ENDPOINT, else the public hub)."),
    base_model: list[str] = typer.Option([], "--base-model", help="Only adapters of this base model (repeatable)."),
    search: str | None = typer.Option(None, help="Only repos whose id contains this text."),
    author: str | None = typer.Option(None, help="Only repos of this user or organisation."),
    limit: int | None = typer.Option(None, min=1, help="List at most this many repos."),
    verify_weights: bool = typer.Option(
        False, help="Download changed weight files to find NaN/inf values (default: configs and headers only)."
    ),
    workers: int = typer.Option(8, min=1, help="Repos read concurrently."),
    catalog: Path | None = typer.Option(None, help="Catalog file (default: ZOO_HOME/catalog.duckdb)."),
) -> None:
    """Crawl the hub's PEFT adapters into the catalog once, with a progress bar."""
    check_hub_reachable(endpoint)
    quiet_prefect()
    from flows.crawl import crawl_hub
    from tasks.progress import step_listener

    with progress_bars(console, transient=True) as bar:
        task_id = bar.add_task("listing", total=None)

        def show(phase: str, done: int, total: int) -> None:
            bar.update(task_id, description=phase, completed=done, total=total or None)

        with step_listener(show):
            try:
                counts = crawl_hub(
                    endpoint=endpoint,
                    base_models=base_model,
                    search=search,
                    author=author,
                    limit=limit,
                    verify_weights=verify_weights,
                    catalog_path=str(catalog) if catalog else None,
                    max_workers=workers,
                )
            except Exception as err:  # noqa: BLE001 (the run is recorded as failed; say why and exit non-zero)
                console.print(f"[red]crawl failed: {err}[/]")
                raise typer.Exit(1) from err
    console.print(", ".join(f"{name} [bold]{value}[/]" for name, value in counts.items()))


def serve(
    deployments: Path = typer.Option(DEPLOYMENTS_FILE, exists=True, dir_okay=False, help="prefect.yaml to serve."),
    port: int = typer.Option(4200, help="Port of the local Prefect server (UI and API) when one is started."),
) -> None:
    """Serve the scheduled deployments of infra/prefect.yaml on this machine until interrupted.

    Without PREFECT_API_URL a local Prefect server (scheduler and UI) is started first: Prefect's
    ephemeral API runs no scheduler, so nothing would ever be due.
    """
    quiet_prefect()
    if os.environ.get("PREFECT_API_URL"):
        _serve_deployments(deployments)
        return
    from flows.cli.ui import prefect_server, running, usable_port
    from zoo.settings import load_settings

    log = load_settings().home / "logs" / "prefect-server.log"
    # every service on (automations too): this server runs the deployments, not just a UI
    server = prefect_server(usable_port(port, "--port"), Path(os.environ["PREFECT_HOME"]), log, lean=False)
    with running(server):
        console.print(f"Prefect UI and API at [bold]{server.url}[/]")
        os.environ["PREFECT_API_URL"] = f"{server.url}/api"
        _serve_deployments(deployments)


def sql(
    query: str = typer.Argument(..., help='One SQL statement, e.g. "SELECT * FROM adapters_per_base_model".'),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format."),
    catalog: Path | None = typer.Option(None, help="Catalog file (default: ZOO_HOME/catalog.duckdb)."),
) -> None:
    """Run a read-only SQL query on the catalog (tables and views: adapter_overview, broken_adapters, ...)."""
    import duckdb

    from catalog import Catalog
    from zoo.settings import load_settings

    try:
        with Catalog.open(catalog or load_settings().catalog_path, read_only=True) as cat:
            result = cat.query(query)
    except (FileNotFoundError, duckdb.Error) as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from err
    print_table(result, format)


def deployments_from_yaml(path: Path) -> list[RunnerDeployment]:
    """The deployments of a ``prefect.yaml`` as served deployments of this checkout's flows, schedules included."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load(path.read_text()) or {}
    deployments = []
    for entry in spec.get("deployments") or []:
        flow = load_flow_from_entrypoint(str(REPO_ROOT / entry["entrypoint"]))
        deployments.append(
            flow.to_deployment(
                name=entry["name"],
                description=entry.get("description"),
                tags=entry.get("tags") or [],
                parameters=entry.get("parameters") or {},
                schedules=[_schedule(s) for s in entry.get("schedules") or []],
                concurrency_limit=_concurrency_limit(entry.get("concurrency_limit")),
            )
        )
    return deployments


def _serve_deployments(path: Path) -> None:
    from prefect import serve as prefect_serve

    prefect_serve(*deployments_from_yaml(path))


def _concurrency_limit(entry: int | dict[str, Any] | None) -> Any:
    """``concurrency_limit`` as ``prefect deploy`` reads it: a number, or ``limit`` and ``collision_strategy``."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    if entry is None or isinstance(entry, int):
        return entry
    return ConcurrencyLimitConfig(**entry)


def _schedule(entry: dict[str, Any]) -> Any:
    from prefect.schedules import Schedule

    interval = entry.get("interval")
    return Schedule(
        interval=timedelta(seconds=interval) if interval is not None else None,
        cron=entry.get("cron"),
        rrule=entry.get("rrule"),
        timezone=entry.get("timezone"),
        active=entry.get("active", True),
        parameters=entry.get("parameters") or {},
    )


def progress_bars(out: Console, transient: bool = False) -> Progress:
    """The CLI's progress display on ``out``: description, bar, done/total, time elapsed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=out, transient=transient)


def check_hub_reachable(endpoint: str | None) -> None:
    """One request, no retries, before a crawl starts: a hub that cannot be connected to (refused, unknown host,
    no scheme) is one line at once; the crawl itself retries such errors for minutes, as a flaky hub deserves.
    Any answer, errors and rate limits too, lets the crawl start."""
    import httpx2
    from huggingface_hub import get_session

    from zoo.settings import load_settings

    url = (endpoint or load_settings().hf_endpoint).rstrip("/")
    try:
        get_session().get(f"{url}/api/models", params={"limit": 1}, timeout=30)
    except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.UnsupportedProtocol) as err:
        raise ValueError(f"cannot connect to the hub at {url} ({type(err).__name__}): check --endpoint or "
                         "HF_ENDPOINT") from err


def quiet_prefect() -> None:
    """Prefect's INFO lines and the download bars of the hub client and MLflow would tear the progress
    bars; warnings and errors still show, without tracebacks unless ``--debug`` (``ZOO_DEBUG``). Call it
    before anything imports Prefect: Prefect reads these settings once."""
    from zoo.settings import apply_environment

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if os.environ.get("ZOO_DEBUG", "") in ("", "0"):
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS", "flows.console_log.OneLineConsoleHandler")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    apply_environment()


def print_table(table: pa.Table, format: OutputFormat = OutputFormat.table) -> None:
    """Print a query result as a rich table, CSV or JSON (shared by ``zoo sql`` and ``zoo demo``)."""
    if format is OutputFormat.csv:
        import pyarrow.csv

        sink = pyarrow.BufferOutputStream()
        pyarrow.csv.write_csv(_flatten_for_csv(table), sink)
        sys.stdout.write(sink.getvalue().to_pybytes().decode())
    elif format is OutputFormat.json:
        sys.stdout.write(json.dumps(table.to_pylist(), default=str, indent=2) + "\n")
    else:
        from rich.table import Table

        view = Table(*table.column_names, caption=f"{table.num_rows} rows")
        for row in table.to_pylist():
            view.add_row(*("" if v is None else str(v) for v in row.values()))
        console.print(view)


def _flatten_for_csv(table: pa.Table) -> pa.Table:
    """CSV has no nested values: lists and structs become their JSON text."""
    import pyarrow as pa

    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type):
            column = pa.array([None if v is None else json.dumps(v, default=str) for v in column.to_pylist()])
        columns.append(column)
    return pa.table(columns, names=table.column_names)
