"""The ``zoo`` command line: one module per command group, assembled here.

It lives on top of the dependency chain (beside the flows) because it reaches every layer; each
command imports its heavy libraries lazily so that ``zoo --help`` stays instant.
"""

from __future__ import annotations

import os
import sys

import typer

from zoo.settings import apply_environment

apply_environment()

from flows.cli import (  # noqa: E402  (environment first)
    catalog,
    crawl,
    demo,
    demo_zoo,
    evaluate,
    hub,
    library,
    recycle,
    ui,
)

app = typer.Typer(
    name="zoo",
    help="Zoo recycler: crawl, cluster, merge, route and evaluate the LoRA adapters of the hub.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(hub.app, name="hub")
app.add_typer(demo_zoo.app, name="demo-zoo")
app.add_typer(library.app, name="library")
app.command("demo")(demo.demo)
app.add_typer(catalog.app, name="catalog")
app.command("crawl")(crawl.crawl)
app.command("serve")(crawl.serve)
app.command("sql")(crawl.sql)
app.command("evaluate")(evaluate.evaluate)
app.command("recycle")(recycle.recycle)
app.command("ui")(ui.ui)


def main() -> None:
    """The ``zoo`` script: a failure is one line saying what was wrong (``--debug`` or ``ZOO_DEBUG=1``: the
    traceback too), not a page of frames from the libraries underneath. Usage errors stay click's."""
    debug = "--debug" in sys.argv[1:] or os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
        os.environ["ZOO_DEBUG"] = "1"  # for Prefect's console log too (``quiet_prefect``)
    if debug:
        app()
        return
    try:
        app()
    except Exception as err:  # noqa: BLE001  (the point: any failure, one line)
        sys.exit(f"zoo: error: {err} ({type(err).__name__}; run again with --debug for the traceback)")
