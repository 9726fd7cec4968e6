"""The evaluation step in process, shards one after the other (``inline``) or on a local Dask cluster (``dask``).

The tiny demo zoo's 8 candidates (as bench/shards.py builds them), shards of ``--shard-size``, the embedded
default (Prefect's temporary server, a plain candidate store folder): the evaluation step's wall time with
each runner from the same start (built candidates, nothing scored), their ratio, and for ``dask`` the time
from the step's start to its first shard flow beginning (the cluster's start: worker processes spawned,
torch, transformers and Prefect imported in each).

    .venv/bin/python bench/dask_runner.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import shards as bench  # first: it points ZOO_HOME at a temporary folder

HOME, REPO_ROOT = bench.HOME, bench.REPO_ROOT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=2, help="examples per task")
    parser.add_argument("--shard-size", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--zoo", default=str(REPO_ROOT / ".zoo" / "test-cache" / "demo-zoo-tiny"))
    args = parser.parse_args()

    from flows.cli.demo_zoo import demo_zoo_suite
    from zoo.demozoo import build_zoo
    from zoo.eval import write_suite
    from zoo.localhub import serve_in_thread

    zoo = build_zoo(args.zoo, profile="tiny", seed=0)
    suite = str(write_suite(HOME / "suite.jsonl", demo_zoo_suite(zoo)))
    catalog, store = str(HOME / "catalog.duckdb"), HOME / "store"
    os.environ.update({"ZOO_CANDIDATE_STORE": str(store), "ZOO_SHARD_SIZE": str(args.shard_size),
                       "ZOO_DASK_WORKERS": str(args.workers)})
    report: dict[str, object] = {"max_examples": args.max_examples, "shard_size": args.shard_size,
                                 "workers": args.workers, "cpus": os.cpu_count()}
    with serve_in_thread(zoo) as hub:
        keys, base_model = bench._build(hub, catalog)
        for runner in ("inline", "dask"):
            shutil.rmtree(store / "results", ignore_errors=True)  # every candidate is scored again
            fresh = str(HOME / f"catalog-{runner}.duckdb")  # the built candidates, no evaluation yet
            shutil.copy(catalog, fresh)
            os.environ["ZOO_SHARD_RUNNER"] = runner
            started = time.time()
            wall = _evaluation(hub, fresh, base_model, keys, suite, args.max_examples)
            report[f"{runner}_s"] = round(wall, 1)
            if runner == "dask":
                report["dask_first_shard_after_s"] = round(_first_dask_shard(started) - started, 1)
            print(json.dumps(report), flush=True)
    report["ratio_dask_to_inline"] = round(report["dask_s"] / report["inline_s"], 2)
    print(json.dumps(report, indent=2))
    shutil.rmtree(HOME, ignore_errors=True)


def _evaluation(hub: str, catalog: str, base_model: str, keys: list[str], suite: str, max_examples: int) -> float:
    """Wall time of the evaluation step in process with the runner of ``ZOO_SHARD_RUNNER``."""
    from flows.evaluate import evaluate_candidates

    started = time.perf_counter()
    scored = evaluate_candidates(base_model, suite, candidate_keys=keys, max_examples=max_examples,
                                 catalog_path=catalog, endpoint=hub)
    wall = time.perf_counter() - started
    assert len(scored) == len(keys), f"{len(keys) - len(scored)} candidates failed"
    return wall


def _first_dask_shard(after: float) -> float:
    """When the first shard flow run on a Dask worker began (epoch seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="on dask worker")))
    return min(r.start_time.timestamp() for r in runs if r.start_time and r.start_time.timestamp() >= after)


if __name__ == "__main__":
    main()
