"""``zoo evaluate``: score base, experts, merges and routed libraries of a zoo and print the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()

DEFAULT_CANDIDATES = "base,experts,uniform,clusters,arrow,phatgoose"


def evaluate(
    zoo_dir: Path | None = typer.Argument(None, help="A built demo zoo folder (default: build/reuse the profile's)."),
    profile: str = typer.Option("tiny", help="Demo zoo profile to build when no ZOO_DIR is given: tiny or small."),
    seed: int = typer.Option(0, help="Seed of the demo zoo to build."),
    candidates: str = typer.Option(DEFAULT_CANDIDATES, help="Comma-separated: base, experts (also gives the "
                                   "oracle), uniform, clusters, arrow, phatgoose."),
    suite: Path | None = typer.Option(None, help="Suite JSONL to score on (default: the zoo's test examples)."),
    max_examples: int | None = typer.Option(None, help="At most N examples per task."),
    merge_method: str = typer.Option("linear", help="Merge method of the per-cluster merges (zoo.merge)."),
    clusters: int | None = typer.Option(None, help="Number of expert clusters (default: best silhouette)."),
    gate_steps: int = typer.Option(100, help="PHATGOOSE gate-training steps."),
    top_k: int | None = typer.Option(None, help="Experts kept per token by both routers (default: Arrow 3, "
                                     "PHATGOOSE 2)."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
    threads: int = typer.Option(1, help="Torch CPU threads while scoring."),
    per_task: bool = typer.Option(False, help="Also print exact match per task."),
    output: Path | None = typer.Option(None, help="Write the full results (per task, per candidate) as JSON."),
) -> None:
    """Evaluate candidates on held-in and held-out tasks and print a leaderboard ranked by held-out exact match."""
    from zoo.demozoo import build_zoo
    from flows.cli.demo_zoo import demo_zoo_suite
    from zoo.eval import demo_zoo_experts, leaderboard_table, plan_candidates, read_suite, task_table
    from zoo.eval import evaluate as run_evaluation
    from zoo.settings import load_settings

    if zoo_dir is None:
        with console.status(f"building the {profile} demo zoo (cached after the first time)"):
            zoo_dir = build_zoo(load_settings().demo_zoo_dir / f"{profile}-{seed}", profile=profile, seed=seed)
    if not (zoo_dir / "zoo.json").is_file():
        raise typer.BadParameter(f"{zoo_dir} has no zoo.json; pass a built demo zoo folder", param_hint="ZOO_DIR")
    pool = demo_zoo_experts(zoo_dir)
    routed = {k: v for k, v in {"top_k": top_k}.items() if v is not None}
    specs = plan_candidates(pool, [c.strip() for c in candidates.split(",") if c.strip()], merge_method=merge_method,
                            clusters=clusters, arrow=routed, phatgoose={**routed, "steps": gate_steps}, seed=seed)
    examples = read_suite(suite) if suite else demo_zoo_suite(zoo_dir)
    base = zoo_dir / json.loads((zoo_dir / "zoo.json").read_text())["base_model"]
    with console.status("evaluating") as status:
        results = run_evaluation(specs, examples, base, pool, max_examples=max_examples, device=device,
                                 threads=threads, progress=lambda message: status.update(message))
    if per_task:
        console.print(task_table(results))
    console.print(leaderboard_table(results))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results.to_json(), indent=2) + "\n")
        console.print(f"results written to {output}")
