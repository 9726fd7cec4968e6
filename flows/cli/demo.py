"""``zoo demo``: the main job on the embedded defaults, for a newcomer's first run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()

# What the demo answers from the catalog once the crawl is done: one SQL query each.
DEMO_QUERIES = {
    "Adapters per base model": "SELECT * FROM adapters_per_base_model",
    "Broken adapters and why": "SELECT repo_id, status, reason FROM broken_adapters ORDER BY repo_id",
}


def demo(
    profile: str = typer.Option("small", help="Demo zoo profile: tiny (about a minute) or small (the demo default)."),
    seed: int = typer.Option(0, help="Seed of the demo zoo."),
) -> None:
    """Build the demo zoo (cached), serve it on loopback, list it with huggingface_hub and crawl it into the catalog."""
    from huggingface_hub import HfApi

    from catalog import Catalog
    from flows.cli.crawl import crawl as crawl_command, print_table
    from zoo.demozoo import build_zoo
    from zoo.localhub import serve_in_thread
    from zoo.settings import load_settings

    settings = load_settings()
    console.rule(f"1. the demo zoo ({profile} profile)")
    zoo_dir = build_zoo(settings.demo_zoo_dir / f"{profile}-{seed}", profile=profile, seed=seed)
    with serve_in_thread(zoo_dir) as url:
        console.rule(f"2. what the local hub at {url} serves, listed with huggingface_hub")
        api = HfApi(endpoint=url, token=False)
        models = list(api.list_models(expand=["sha", "cardData"]))
        datasets = list(api.list_datasets())
        console.print(_models_table(models))
        console.print(f"[bold]{len(datasets)}[/] dataset repos: " + ", ".join(d.id for d in datasets))
        console.rule("3. crawl it into the catalog (Prefect flow crawl-hub)")
        crawl_command(endpoint=url, base_model=[], search=None, author=None, limit=None,
                      verify_weights=True, workers=4, catalog=None)
    with Catalog.open(settings.catalog_path, read_only=True) as cat:
        for title, query in DEMO_QUERIES.items():
            console.print(f"\n[bold]{title}[/]  zoo sql \"{query}\"")
            print_table(cat.query(query))
    _print_where(settings.home, zoo_dir)


def _models_table(models: list) -> Table:
    table = Table(title=f"{len(models)} model repos served by the local hub")
    for column in ("repo", "sha", "library", "base model"):
        table.add_column(column)
    for info in models:
        card = info.card_data.to_dict() if info.card_data else {}
        table.add_row(info.id, (info.sha or "")[:10], str(card.get("library_name", "")), str(card.get("base_model", "")))
    return table


def _print_where(home: Path, zoo_dir: Path) -> None:
    console.rule("where things are")
    console.print(f"Everything lives under [bold]{home}[/] (rm -rf it to start over).")
    console.print(f"Demo zoo: {zoo_dir}  (its manifest: {zoo_dir / 'zoo.json'})")
    console.print(f"Catalog:  {home / 'catalog.duckdb'}  e.g.  .venv/bin/zoo sql \"SELECT * FROM adapter_overview\"")
    console.print(f"Serve the zoo as a hub:  .venv/bin/zoo hub serve {zoo_dir}  (then HF_ENDPOINT=http://127.0.0.1:8800)")
