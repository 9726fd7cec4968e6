"""``zoo evaluate``: score base, experts, merges and routed libraries of a zoo and print the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()

# Besides these, a router's name plans its library over all experts; "routers" plans one per registered router.
BASELINES = ("base", "experts", "uniform", "clusters")
EVERY_ROUTER = "routers"
DEFAULT_CANDIDATES = "base,experts,uniform,clusters,routers"


def evaluate(
    zoo_dir: Path | None = typer.Argument(None, help="A built demo zoo folder (default: build/reuse the profile's)."),
    profile: str = typer.Option("tiny", help="Demo zoo profile to build when no ZOO_DIR is given: tiny or small."),
    seed: int = typer.Option(0, help="Seed of the demo zoo to build."),
    candidates: str = typer.Option(DEFAULT_CANDIDATES, help="Comma-separated: base, experts (also gives the "
                                   "oracle), uniform, clusters, router names (a library over all experts) or "
                                   "'routers' (one per registered router)."),
    suite: Path | None = typer.Option(None, help="Suite JSONL to score on (default: the zoo's test examples)."),
    max_examples: int | None = typer.Option(None, help="At most N examples per task."),
    merge_method: str = typer.Option("linear", help="Merge method of the per-cluster merges (zoo.merge)."),
    clusters: int | None = typer.Option(None, help="Number of expert clusters (default: best silhouette)."),
    router_settings: str | None = typer.Option(None, help="Settings per router over its defaults, as JSON, e.g. "
                                               "'{\"arrow\": {\"top_k\": 1}}'."),
    data_from: str = typer.Option("zoo", help="Whose training data data-aware methods get: 'zoo' (every expert's, "
                                  "as the zoo's builder knows it) or 'cards' (only where the expert's card names "
                                  "its dataset, as the pipeline sees the hub)."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
    threads: int = typer.Option(0, help="Torch CPU threads while scoring (0: ZOO_TORCH_THREADS, else every core)."),
    per_task: bool = typer.Option(False, help="Also print exact match per task."),
    output: Path | None = typer.Option(None, help="Write the full results (per task, per candidate) as JSON."),
) -> None:
    """Evaluate candidates on held-in and held-out tasks and print a leaderboard ranked by held-out exact match."""
    from flows.cli.demo_zoo import demo_zoo_suite
    from zoo.candidates import CandidateChoices, CandidateSpec, Member, exact_clusters, plan_candidates
    from zoo.demozoo import build_zoo
    from zoo.demozoo.pool import DATA_FROM, demo_zoo_experts
    from zoo.eval import evaluate as run_evaluation
    from zoo.eval import leaderboard_table, read_suite, task_table
    from zoo.routing import ROUTERS
    from zoo.settings import load_settings

    names = [c.strip() for c in candidates.split(",") if c.strip()]
    unknown = set(names) - {*BASELINES, EVERY_ROUTER, *ROUTERS}
    if unknown:
        raise typer.BadParameter(f"unknown candidates {sorted(unknown)}; choose from "
                                 f"{[*BASELINES, EVERY_ROUTER, *sorted(ROUTERS)]}", param_hint="--candidates")
    if zoo_dir is None:
        with console.status(f"building the {profile} demo zoo (cached after the first time)"):
            zoo_dir = build_zoo(load_settings().demo_zoo_dir / f"{profile}-{seed}", profile=profile, seed=seed)
    if not (zoo_dir / "zoo.json").is_file():
        raise typer.BadParameter(f"{zoo_dir} has no zoo.json; pass a built demo zoo folder", param_hint="ZOO_DIR")
    if data_from not in DATA_FROM:
        raise typer.BadParameter(f"choose one of {DATA_FROM}, got {data_from!r}", param_hint="--data-from")
    pool = demo_zoo_experts(zoo_dir, data_from)
    routers = sorted(ROUTERS) if EVERY_ROUTER in names else [n for n in names if n in ROUTERS]
    choices = CandidateChoices(
        merge_methods=[merge_method] if "clusters" in names else [], routers=routers, experts=False,
        uniform="uniform" in names, libraries_per_cluster=False, libraries_over_all=bool(routers),
        router_settings=json.loads(router_settings) if router_settings else {})
    groups = exact_clusters(pool, clusters, seed) if "clusters" in names else {}
    specs = [s for s in plan_candidates([Member.parse(r) for r in pool.names], groups, choices)
             if "base" in names or s.kind != "base"]
    if "experts" in names:  # after the others, so the oracle row ends the table
        specs += [CandidateSpec("expert", (r,), name=r) for r in pool.names]
    examples = read_suite(suite) if suite else demo_zoo_suite(zoo_dir)
    base = zoo_dir / json.loads((zoo_dir / "zoo.json").read_text())["base_model"]
    with console.status("evaluating") as status:
        results = run_evaluation(specs, examples, base, pool, max_examples=max_examples, device=device,
                                 threads=threads or load_settings().torch_threads, progress=lambda message: status.update(message))
    if per_task:
        console.print(task_table(results))
    console.print(leaderboard_table(results))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results.to_json(), indent=2) + "\n")
        console.print(f"results written to {output}")
