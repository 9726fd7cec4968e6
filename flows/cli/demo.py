"""``zoo demo``: the main job on the embedded defaults, for a newcomer's first run.

Build the demo zoo (cached), serve it as a hub on loopback, crawl it into the catalog, then run the
whole ``recycle`` pipeline against it and end with the leaderboard, the champion and what to try next.
"""

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
# Examples per task scored by the demo: enough to rank candidates, small enough for a 2-core laptop.
DEMO_MAX_EXAMPLES = {"tiny": 8, "small": 8, "real": 16}
# Candidates evaluated in full after the cheap first pass (``zoo recycle --screen``); None: all of them. Three
# best, plus the best of each kind, the base and the uniform merge: five full passes on the real zoo.
DEMO_SCREEN = {"real": 3}
# The real profile's demo builds routed libraries over all experts only (not per cluster: silhouette finds a
# cluster per task there, mostly the two experts of one task, between which a router has nothing to choose),
# and leaves out what costs minutes on 2 cores: PHATGOOSE (its gates over 16 experts took 11 minutes for 20
# steps), RegMean (its Grams, 10 minutes for five clusters) and per-cluster averages (a greedy soup of two
# experts that both help is that average). docs/results.md has every candidate.
DEMO_CANDIDATES = {"real": {"libraries_per_cluster": False, "routers": ["arrow", "prompt_centroid"],
                            "merge_methods": ["ties", "greedy_soup"]}}


def demo(
    profile: str = typer.Option("real", help="Demo zoo profile: real (SmolLM2-135M-Instruct with 16 LoRA experts, "
                                "the default), tiny or small (toy models trained from scratch, for tests)."),
    seed: int = typer.Option(0, help="Seed of the demo zoo."),
    recycle: bool = typer.Option(True, help="Run the recycle pipeline after the crawl (--no-recycle: crawl only)."),
) -> None:
    """Build the demo zoo, serve it on loopback, crawl it, recycle it and show the leaderboard and the champion."""
    from flows.cli.crawl import quiet_prefect

    quiet_prefect()  # before huggingface_hub is imported: it reads its settings once
    from huggingface_hub import HfApi

    from catalog import Catalog
    from flows.cli.crawl import crawl as crawl_command
    from flows.cli.crawl import print_table
    from flows.cli.demo_zoo import export_demo_zoo_suite
    from zoo.demozoo import build_zoo
    from zoo.eval.suite import read_suite
    from zoo.localhub import serve_in_thread
    from zoo.settings import load_settings

    settings = load_settings()
    console.rule(f"1. the demo zoo ({profile} profile)")
    zoo_dir = build_zoo(settings.demo_zoo_dir / f"{profile}-{seed}", profile=profile, seed=seed)
    suite = export_demo_zoo_suite(zoo_dir, settings.suites_dir / f"demo-{profile}.jsonl")
    outcome = {}
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
        if recycle:
            console.rule("4. recycle: fingerprint, cluster, build candidates, evaluate, register "
                         "(Prefect flow recycle)")
            from flows.cli.recycle import print_outcome, run_with_progress

            outcome = run_with_progress(suite=str(suite), endpoint=url, crawl=False,
                                        max_examples=DEMO_MAX_EXAMPLES.get(profile), screen=DEMO_SCREEN.get(profile),
                                        candidates=DEMO_CANDIDATES.get(profile))
            for base, result in outcome.items():
                print_outcome(base, str(suite), result)
    _print_next_steps(settings.home, zoo_dir, outcome, read_suite(suite)[0].prompt)


def _models_table(models: list) -> Table:
    table = Table(title=f"{len(models)} model repos served by the local hub")
    for column in ("repo", "sha", "library", "base model"):
        table.add_column(column)
    for info in models:
        card = info.card_data.to_dict() if info.card_data else {}
        table.add_row(info.id, (info.sha or "")[:10], str(card.get("library_name", "")),
                      str(card.get("base_model", "")))
    return table


def _print_next_steps(home: Path, zoo_dir: Path, outcome: dict, prompt: str) -> None:
    console.rule("where things are, and three things to try")
    console.print(f"Everything lives under [bold]{home}[/] (rm -rf it to start over); the demo zoo is {zoo_dir}.")
    console.print("1. The leaderboard is a SQL query:\n"
                  "   .venv/bin/zoo sql \"SELECT rank, candidate, kind, held_in_em, held_out_em FROM leaderboard ORDER BY rank\"",
                  soft_wrap=True)
    console.print("2. Watch the flow runs and the MLflow runs:  .venv/bin/zoo ui  (Prefect and MLflow UIs on loopback)",
                  soft_wrap=True)
    shell_quoted = repr(prompt).replace('"', '\\"')  # a Python literal inside the shell's double quotes
    for result in outcome.values():
        console.print("3. Generate with the champion:\n"
                      f"   ZOO_HOME={home} .venv/bin/python -c \"import mlflow; "
                      f"mlflow.set_tracking_uri('sqlite:///{home}/mlflow.db'); "
                      f"m = mlflow.pyfunc.load_model('models:/{result['model_name']}@champion'); "
                      f"print(m.predict([{shell_quoted}]))\"", soft_wrap=True)
        break
    console.print(f"Serve the zoo as a hub:  .venv/bin/zoo hub serve {zoo_dir}  "
                  "(then HF_ENDPOINT=http://127.0.0.1:8800)",
                  soft_wrap=True)
