"""The ``gpu`` work pool end to end: a real Prefect server, a real worker, a deployment of infra/prefect.yaml.

What a GPU machine does (``prefect worker start --pool gpu``), on loopback with a process pool: the pool
gets the base job template of infra/work-pools/process.json, ``prefect deploy`` registers a deployment of
infra/prefect.yaml from this checkout (its pull step moves each run into ZOO_REPO_DIR, read in the
worker's environment), the worker picks the run up and runs it in a subprocess, and the run's side
effect lands where its parameters said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from catalog import Catalog
from prefect_server import log_tail, prefect_api, prefect_worker

REPO_ROOT = Path(__file__).resolve().parents[1]
POOL = "gpu"
RUN_TIMEOUT_S = 240

# The deployment the worker runs (sent to POOL whatever infra/prefect.yaml says) and how its outcome is checked.
DEPLOYMENT = "evaluate-gpu"
CANDIDATES = {"experts": False, "libraries_over_all": False, "merge_methods": [], "routers": []}  # base, uniform


def prepare_candidates(hub: str, workdir: Path, tiny_zoo: Path) -> dict[str, Any]:
    """Crawl, fingerprint, cluster and build in this process; returns the evaluate deployment's parameters."""
    from flows.build_candidates import build_candidates
    from flows.cluster import cluster_adapters
    from flows.crawl import crawl_hub
    from flows.fingerprint import fingerprint
    from zoo.eval import demo_zoo_suite, write_suite

    catalog = str(workdir / "catalog.duckdb")
    base_model = json.loads((tiny_zoo / "zoo.json").read_text())["base_model"]
    crawl_hub(endpoint=hub, catalog_path=catalog)
    fingerprint(base_model, endpoint=hub, catalog_path=catalog)
    clustering = cluster_adapters(base_model, k=2, catalog_path=catalog)
    keys = build_candidates(base_model, clustering, options=CANDIDATES, endpoint=hub, catalog_path=catalog)
    suite = write_suite(workdir / "suite.jsonl", demo_zoo_suite(tiny_zoo, max_per_task=2))
    return {"base_model": base_model, "suite": str(suite), "candidate_keys": keys, "max_examples": 2,
            "endpoint": hub, "catalog_path": catalog}


def check_outcome(parameters: dict[str, Any]) -> None:
    """Every candidate has its evaluation, written by the worker's run, with both splits scored."""
    with Catalog.open(parameters["catalog_path"], read_only=True) as cat:
        rows = cat.query("SELECT candidate_key, held_in_tasks, held_out_tasks FROM evaluations").to_pylist()
    assert sorted(r["candidate_key"] for r in rows) == sorted(parameters["candidate_keys"])
    assert all(r["held_in_tasks"] > 0 and r["held_out_tasks"] > 0 for r in rows)


def test_a_gpu_pool_worker_runs_a_deployment_of_infra_prefect_yaml(
    tiny_zoo: Path, tiny_hub: str, tmp_path: Path
) -> None:
    from prefect.deployments import run_deployment

    # what a worker machine sets: its home, its checkout (the pull step's ZOO_REPO_DIR), its Prefect client home
    # (ZOO_HOME is shared with this process, as a team shares it on a volume: the built candidates live there)
    env = {"ZOO_HOME": os.environ["ZOO_HOME"], "ZOO_REPO_DIR": str(REPO_ROOT), "PREFECT_HOME": str(tmp_path / "client")}
    with prefect_api(tmp_path / "server") as api_url:
        _create_process_pool(POOL, REPO_ROOT / "infra" / "work-pools" / "process.json")
        with prefect_worker(POOL, api_url, tmp_path / "worker.log", env) as worker_log:
            # deployed while the worker boots
            deployment_id = _prefect_deploy(DEPLOYMENT, POOL, {**env, "PREFECT_API_URL": api_url})
            parameters = prepare_candidates(tiny_hub, tmp_path, tiny_zoo)
            flow_run = run_deployment(deployment_id, parameters=parameters, timeout=RUN_TIMEOUT_S, poll_interval=1)
        assert flow_run.state is not None and flow_run.state.is_completed(), f"{flow_run.state}\n{log_tail(worker_log)}"
    assert flow_run.work_pool_name == POOL
    assert str(flow_run.id) in worker_log.read_text(), "the run was not submitted by the worker"
    check_outcome(parameters)


def _create_process_pool(name: str, template: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        pool = WorkPoolCreate(name=name, type="process", base_job_template=json.loads(template.read_text()))
        client.create_work_pool(pool)


def _prefect_deploy(name: str, pool: str, env: dict[str, str]) -> str:
    """``prefect deploy`` of one deployment of infra/prefect.yaml from the repository root; returns its id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml"]
    command += ["--name", name, "--pool", pool]
    env = {**os.environ, **env}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with get_client(sync_client=True) as client:
        by_name = DeploymentFilter(name=DeploymentFilterName(any_=[name]))
        (deployment,) = client.read_deployments(deployment_filter=by_name)
    assert deployment.work_pool_name == pool and deployment.pull_steps, deployment
    return str(deployment.id)
