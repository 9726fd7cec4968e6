"""Shard benchmark on the tiny demo zoo: what a shard costs besides its work, and 1 against 2 workers.

1. In process: one evaluation shard of 1 candidate and one of ``--per-shard`` candidates (same base, same
   suite); the difference gives the work per candidate, the rest is the fixed cost of a shard (flow run,
   base download check and load, suite parsing).
2. Through a real ``prefect server`` on loopback and process workers of a ``gpu`` pool (the deployments of
   infra/prefect.yaml, as tests/test_worker_pool.py runs them): the evaluation step of the same candidates
   cut into shards, with 1 worker and then with 2, each from an empty candidate store's results (the
   folders stay built); it reports each wall time, their ratio, and per remote shard the time from
   submission to its flow starting (the worker's process start, imports, engine).

    .venv/bin/python bench/shards.py
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]
HOME = Path(tempfile.mkdtemp(prefix="zoo-bench-shards-"))
os.environ.update({"ZOO_HOME": str(HOME), "PREFECT_HOME": str(HOME / "prefect")})

from zoo.settings import apply_environment  # noqa: E402

apply_environment()

CANDIDATES = {"experts": False, "libraries_over_all": False, "merge_methods": ["linear", "ties"], "routers": ["arrow"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-shard", type=int, default=4, help="candidates in the bigger in-process shard")
    parser.add_argument("--max-examples", type=int, default=4, help="examples per task")
    parser.add_argument("--zoo", type=Path, default=REPO_ROOT / ".zoo" / "test-cache" / "demo-zoo-tiny")
    args = parser.parse_args()

    from prefect_server import prefect_api, prefect_worker_process
    from test_worker_pool import DEPLOYMENTS, POOL, _create_process_pool, _prefect_deploy

    from flows.cli.demo_zoo import demo_zoo_suite
    from zoo.demozoo import build_zoo
    from zoo.eval import write_suite
    from zoo.localhub import serve_in_thread

    zoo = build_zoo(args.zoo, profile="tiny", seed=0)
    suite = write_suite(HOME / "suite.jsonl", demo_zoo_suite(zoo))
    catalog = str(HOME / "catalog.duckdb")
    store = HOME / "store"
    os.environ.update({"ZOO_CANDIDATE_STORE": f"file://{store}", "ZOO_SHARD_SIZE": "2"})
    report: dict[str, object] = {"max_examples": args.max_examples}
    with serve_in_thread(zoo) as hub, prefect_api(HOME / "server") as api_url:
        keys, base_model = _build(hub, catalog)
        report.update(_in_process_shard(hub, catalog, base_model, keys, str(suite), args.per_shard,
                                        args.max_examples, store))
        print(json.dumps(report), flush=True)
        _create_process_pool(POOL, REPO_ROOT / "infra" / "work-pools" / "process.json")
        env = {"ZOO_REPO_DIR": str(REPO_ROOT), "PYTHONPATH": str(REPO_ROOT)}
        deploy_env = {**env, "ZOO_HOME": str(HOME / "deploy"), "PREFECT_HOME": str(HOME / "deploy-client"),
                      "PREFECT_API_URL": api_url}
        for name in DEPLOYMENTS:
            _prefect_deploy(name, POOL, deploy_env)
        for workers in (1, 2):
            shutil.rmtree(store / "results", ignore_errors=True)  # every candidate is scored again
            fresh = HOME / f"catalog-{workers}.duckdb"  # the built candidates, no evaluation yet
            shutil.copy(catalog, fresh)
            started = []
            for i in range(workers):
                home = HOME / f"worker{workers}-{i}"
                started.append(prefect_worker_process(POOL, api_url, home / "worker.log",
                                                      {**env, "ZOO_HOME": str(home / "home"),
                                                       "PREFECT_HOME": str(home / "client")}, f"w{i}", 1))
            for worker in started:
                worker.__enter__()
            try:
                time.sleep(15)  # the workers' own start-up is not a shard's cost
                wall = _remote_evaluation(hub, str(fresh), base_model, keys, str(suite), args.max_examples)
            finally:
                for worker in reversed(started):
                    worker.__exit__(None, None, None)
            report[f"remote_{workers}_workers_s"] = round(wall, 1)
            report[f"remote_{workers}_workers_start_s"] = _start_latencies(
                [HOME / f"worker{workers}-{i}" / "worker.log" for i in range(workers)])
            print(json.dumps(report), flush=True)
        report["ratio_2_to_1"] = round(report["remote_2_workers_s"] / report["remote_1_workers_s"], 2)
    print(json.dumps(report, indent=2))
    shutil.rmtree(HOME, ignore_errors=True)


def _build(hub: str, catalog: str) -> tuple[list[str], str]:
    """Crawl, fingerprint, cluster and build the 8 candidates in process (not timed)."""
    from flows.build_candidates import build_candidates
    from flows.cluster import cluster_adapters
    from flows.crawl import crawl_hub
    from flows.fingerprint import fingerprint
    from tasks.base_models import recyclable_base_models

    crawl_hub(endpoint=hub, catalog_path=catalog)
    (base_model,) = recyclable_base_models(catalog)
    fingerprint(base_model, endpoint=hub, catalog_path=catalog)
    clustering = cluster_adapters(base_model, k=2, catalog_path=catalog)
    return build_candidates(base_model, clustering, options=CANDIDATES, endpoint=hub, catalog_path=catalog), base_model


def _in_process_shard(hub: str, catalog: str, base_model: str, keys: list[str], suite: str, per_shard: int,
                      max_examples: int, store: Path) -> dict[str, float]:
    """Shards of 1 and of ``per_shard`` candidates run in process; fixed cost = t(1) - per-candidate work."""
    from catalog import Catalog
    from catalog import recycle_records as records
    from flows.shards import evaluate_candidates_shard
    from tasks.evaluation import Suite, shard_input

    task_suite = Suite.of(suite)
    with Catalog.open(catalog) as cat:
        rows = records.candidates(cat, keys)
    library = [r for r in rows if r["kind"] == "library"] + [r for r in rows if r["kind"] != "library"]
    times = {}
    for n in (1, per_shard, 1, per_shard):  # twice each; the lower counts (shared cores are noisy)
        shutil.rmtree(store / "results", ignore_errors=True)
        inputs = [shard_input(r, task_suite, max_examples) for r in library[:n]]
        started = time.perf_counter()
        evaluate_candidates_shard(base_model, rows[0]["base_revision"], inputs, task_suite.name, task_suite.text(),
                                  max_examples=max_examples, endpoint=hub)
        times[n] = min(times.get(n, float("inf")), time.perf_counter() - started)
    per_candidate = (times[per_shard] - times[1]) / (per_shard - 1)
    fixed = times[1] - per_candidate
    return {"shard_1_s": round(times[1], 2), f"shard_{per_shard}_s": round(times[per_shard], 2),
            "work_per_candidate_s": round(per_candidate, 2), "fixed_per_shard_s": round(fixed, 2),
            f"overhead_at_{per_shard}": round(fixed / times[per_shard], 3)}


def _remote_evaluation(hub: str, catalog: str, base_model: str, keys: list[str], suite: str,
                       max_examples: int) -> float:
    """Wall time of the evaluation step through the evaluate-gpu deployment (no candidate fails)."""
    from flows.evaluate import evaluate_candidates

    started = time.perf_counter()
    scored = contextvars.copy_context().run(evaluate_candidates, base_model, suite, candidate_keys=keys,
                                            max_examples=max_examples, catalog_path=catalog, endpoint=hub,
                                            shard_deployment="evaluate-shard/evaluate-gpu")
    wall = time.perf_counter() - started
    assert len(scored) == len(keys), f"{len(keys) - len(scored)} candidates failed"
    return wall


def _start_latencies(logs: list[Path]) -> list[float]:
    """Per shard run, seconds from its worker taking it to its flow beginning (process start, imports, engine),
    read from the workers' logs (``HH:MM:SS.fff`` stamps of one day)."""
    def seconds(stamp: str) -> float:
        h, m, sec = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)

    out = []
    for log in logs:
        taken = None
        for line in log.read_text(errors="replace").splitlines():
            if "submitting flow run" in line:
                taken = seconds(line.split(" ")[0])
            elif "Beginning subflow run" in line and taken is not None:
                out.append(round(seconds(line.split(" ")[0]) - taken, 1))
                taken = None
    return sorted(out)


if __name__ == "__main__":
    main()
