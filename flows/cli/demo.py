"""``zoo demo``: the main job on the embedded defaults, for a newcomer's first run."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def demo(
    profile: str = typer.Option("small", help="Demo zoo profile: tiny (seconds) or small (the demo default)."),
    seed: int = typer.Option(0, help="Seed of the demo zoo."),
) -> None:
    """Build the demo zoo (cached), serve it on loopback and show what the hub serves."""
    from huggingface_hub import HfApi

    from zoo.demozoo import build_zoo
    from zoo.localhub import serve_in_thread
    from zoo.settings import load_settings

    settings = load_settings()
    zoo_dir = build_zoo(settings.demo_zoo_dir / f"{profile}-{seed}", profile=profile, seed=seed)
    with serve_in_thread(zoo_dir) as url:
        api = HfApi(endpoint=url, token=False)
        models = list(api.list_models(expand=["sha", "tags", "cardData"]))
        datasets = list(api.list_datasets())
        console.print(_models_table(models))
        console.print(f"[bold]{len(datasets)}[/] dataset repos: " + ", ".join(d.id for d in datasets))
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
    console.print(f"\nEverything lives under [bold]{home}[/] (rm -rf it to start over).")
    console.print(f"Demo zoo: {zoo_dir}  (its manifest: {zoo_dir / 'zoo.json'})")
    console.print(f"Serve it yourself:  zoo hub serve {zoo_dir}  then  export HF_ENDPOINT=http://127.0.0.1:8800")
