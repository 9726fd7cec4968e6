"""``zoo recycle``: the whole pipeline once, with progress bars, ending with the leaderboard and the champion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def recycle(
    suite: Path = typer.Option(..., help="Task suite JSONL (prompt, target, task, split) to evaluate on."),
    base_model: list[str] = typer.Option([], "--base-model", help="Recycle this base model's adapters "
                                         "(repeatable; default: every base model with 2+ usable adapters)."),
    endpoint: str | None = typer.Option(None, help="Hub URL (default: HF_ENDPOINT, else the public hub)."),
    crawl: bool = typer.Option(True, help="Crawl the hub first (--no-crawl: use the catalog as it is)."),
    k: int | None = typer.Option(None, help="Number of clusters (default: best silhouette)."),
    candidates: str | None = typer.Option(None, help="Candidate choices as JSON, e.g. "
                                          "'{\"merge_methods\": [\"ties\"], \"routers\": [\"arrow\"]}'."),
    max_examples: int | None = typer.Option(None, min=1, help="Score at most N examples per task."),
    screen: int | None = typer.Option(None, min=1, help="Successive halving: score every candidate's held-in NLL "
                                      "on a few examples first and evaluate only the best N in full."),
    device: str = typer.Option("auto", help="Torch device for merging, gate training and scoring (auto: the "
                               "GPU of the machine doing the work, if any)."),
    build_deployment: str | None = typer.Option(None, help="Build candidates through this deployment (e.g. "
                                                "build-shard/build-candidates-gpu): one flow run per shard, all at "
                                                "once, instead of in process."),
    evaluate_deployment: str | None = typer.Option(None, help="Evaluate through this deployment (e.g. "
                                                   "evaluate-shard/evaluate-gpu): one flow run per shard, all at once, "
                                                   "instead of in process."),
) -> None:
    """Crawl, fingerprint, cluster, build candidates, evaluate them and register the winner in MLflow."""
    from flows.cli.crawl import check_hub_reachable, quiet_prefect
    from zoo.eval.suite import read_suite

    read_suite(suite)  # a missing or malformed suite is refused before anything starts, with its line
    quiet_prefect()  # before the first import of Prefect (flows.shards)
    from flows.shards import check_device_for_runner

    if not (build_deployment and evaluate_deployment):  # a step runs its shards on this machine
        check_device_for_runner(device)
    if crawl:
        check_hub_reachable(endpoint)
    outcome = run_with_progress(suite=str(suite), base_models=base_model or None, endpoint=endpoint, crawl=crawl,
                                k=k, candidates=json.loads(candidates) if candidates else None,
                                max_examples=max_examples, screen=screen, device=device,
                                build_deployment=build_deployment,
                                evaluate_deployment=evaluate_deployment)
    if not outcome:
        raise ValueError("nothing to recycle: no base model in the catalog has 2 or more usable adapters "
                         "(crawl a hub that has some: zoo crawl --endpoint URL, or drop --no-crawl)")
    for base, result in outcome.items():
        print_outcome(base, str(suite), result)


def run_with_progress(**parameters: Any) -> dict[str, dict[str, Any]]:
    """Run the ``recycle`` flow with one rich progress bar per step."""
    from flows.cli.crawl import progress_bars
    from flows.recycle import recycle as recycle_flow
    from tasks.progress import step_listener

    with progress_bars(console) as bar:
        bars: dict[str, Any] = {}

        def show(what: str, done: int, total: int) -> None:
            if what not in bars:
                bars[what] = bar.add_task(what, total=total)
            bar.update(bars[what], completed=done, total=total)

        with step_listener(show):
            return recycle_flow(**parameters)


def print_outcome(base_model: str, suite: str, result: dict[str, Any]) -> None:
    """The leaderboard of this base model and suite, and what the registry did."""
    from tasks.evaluation import Suite
    from tasks.leaderboard import leaderboard_rows
    from zoo.settings import load_settings

    rows = leaderboard_rows(load_settings().catalog_path, base_model, Suite.of(suite).hash)
    console.print(leaderboard_table(rows, f"{base_model} on {Path(suite).stem}"))
    verdict = "registered as version " + str(result["version"]) if result["registered"] else "not registered"
    console.print(f"Best candidate: [bold]{result['best']}[/] ({verdict}: {result['reason']}).")
    console.print(f"Champion: [bold]models:/{result['model_name']}@champion[/] "
                  f"(version {result['champion_version']}).")


def leaderboard_table(rows: list[dict[str, Any]], title: str) -> Table:
    from tasks.leaderboard import COLUMNS as columns

    table = Table(title=title)
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column in ("candidate", "kind") else "right")
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row[c]) for c in columns],
                      style="dim" if row["rank"] is None else None)
    return table
