"""``zoo demo-zoo``: build the bundled demo zoo (synthetic tasks, a base model, LoRA experts, broken repos)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from zoo.eval.suite import EvalExample

app = typer.Typer(help="The demo zoo: a local, offline stand-in for the hub's LoRA adapters.", no_args_is_help=True)
console = Console()


@app.command()
def build(
    directory: Path = typer.Argument(..., help="Folder to build the zoo into (hub layout: <org>/<name>, datasets/)."),
    profile: str = typer.Option("small", help="tiny (about a minute, used by the tests), small (the demo default) or "
                                "real (SmolLM2-135M-Instruct with instruction experts; real-mini: its test version)."),
    seed: int = typer.Option(0, help="Seed: the same profile and seed always give the same zoo."),
) -> None:
    """Build the demo zoo into DIRECTORY; returns at once if the same build is already there."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from zoo.demozoo import build_zoo
    from zoo.demozoo.profiles import PROFILES

    if profile not in PROFILES:
        raise typer.BadParameter(f"choose one of {', '.join(PROFILES)}", param_hint="--profile")
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("building the demo zoo", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        zoo_dir = build_zoo(directory, profile=profile, seed=seed, progress=progress)
    console.print(_summary(zoo_dir))
    console.print(f"Built in {time.monotonic() - started:.0f} s (a cached build returns at once): {zoo_dir}")
    console.print(f"Manifest: {zoo_dir / 'zoo.json'}   Serve it: zoo hub serve {zoo_dir}")


@app.command()
def suite(
    directory: Path = typer.Argument(..., help="A built demo zoo folder."),
    output: Path = typer.Argument(..., help="The suite JSONL file to write (what `zoo recycle --suite` reads)."),
    max_per_task: int | None = typer.Option(None, min=1, help="At most N test examples per task."),
) -> None:
    """Write the zoo's held-in and held-out test examples as one task-suite JSONL file."""
    if not (directory / "zoo.json").is_file():
        raise typer.BadParameter(f"{directory} has no zoo.json; pass a built demo zoo folder", param_hint="DIRECTORY")
    console.print(f"suite written to {export_demo_zoo_suite(directory, output, max_per_task)}")


def demo_zoo_suite(zoo_dir: str | Path, max_per_task: int | None = None) -> list[EvalExample]:
    """The test examples of every task of a built demo zoo (the first ``max_per_task`` of each), as the
    harness reads a suite: the demo zoo's own task format stays inside the demo commands."""
    from zoo.demozoo.tasks import load_suite
    from zoo.eval.suite import EvalExample

    examples = []
    for task in load_suite(Path(zoo_dir)):
        for e in task.test[:max_per_task]:
            examples.append(EvalExample(e.prompt, e.target, e.task, task.split, e.skill, e.family))
    return examples


def export_demo_zoo_suite(zoo_dir: str | Path, path: str | Path, max_per_task: int | None = None) -> Path:
    """Write the demo zoo's suite to one JSONL file, e.g. to evaluate it elsewhere."""
    from zoo.eval.suite import write_suite

    return write_suite(path, demo_zoo_suite(zoo_dir, max_per_task))


def _summary(zoo_dir: Path) -> Table:
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    experts_per_family: dict[str, int] = {}
    for expert in manifest["experts"]:
        experts_per_family[expert["family"]] = experts_per_family.get(expert["family"], 0) + 1
    splits: dict[str, int] = {}
    for task in manifest["tasks"]:
        splits[task["split"]] = splits.get(task["split"], 0) + 1
    table = Table(title=f"demo zoo '{manifest['profile']}' (seed {manifest['seed']})", show_header=False)
    table.add_row("base model", manifest["base_model"])
    for family, skills in manifest["families"].items():
        table.add_row(f"family {family}", ", ".join(skills))
    per_family = ", ".join(f"{family} {n}" for family, n in experts_per_family.items())
    table.add_row("experts", f"{len(manifest['experts'])} ({per_family})")
    table.add_row("tasks", ", ".join(f"{n} {s}" for s, n in splits.items()))
    table.add_row("broken repos", "\n".join(f"{b['repo_id']} ({b['kind']})" for b in manifest["broken"]))
    return table
