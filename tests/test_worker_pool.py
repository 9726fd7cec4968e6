"""The ``gpu`` work pool end to end: a real Prefect server, two real workers, deployments of infra/prefect.yaml.

What GPU machines do (``prefect worker start --pool gpu``), on loopback with a process pool: the pool gets
the base job template of infra/work-pools/process.json, ``prefect deploy`` registers the shard deployments
of infra/prefect.yaml from this checkout (their pull step moves each run into ZOO_REPO_DIR, read in the
worker's environment), ``recycle`` cuts building and evaluation into shards and submits them all at once,
both workers take shards, each in a subprocess, and only this process writes the catalog. The workers share
no volume with it: each has its own ZOO_HOME, and the candidate folders travel through the candidate store
(a ``file://`` URL standing for object storage). One worker is killed while it runs a shard: its flow run
stops beating in the store, the orchestrator marks it crashed and hands the shard out again, and the other
worker finishes it.
"""

from __future__ import annotations

import contextvars
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prefect_server import log_tail, prefect_api, prefect_worker_process

from catalog import Catalog

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[1]
POOL = "gpu"

# The deployment of infra/prefect.yaml that the workers run (sent to POOL whatever the file says): recycle
# hands it the shards of its evaluation step. Building runs in process here (the same shards; a worker's
# flow run costs 20-40 s to start on 2 busy cores): its folders reach the workers through the store only.
DEPLOYMENTS = ("evaluate-gpu",)
# base, uniform merge, per cluster (k=2) a linear and a TIES merge and an Arrow library: 8 candidates
CANDIDATES = {"experts": False, "libraries_over_all": False, "merge_methods": ["linear", "ties"], "routers": ["arrow"]}
SHARD_SIZE = 2


def test_two_workers_take_the_shards_and_one_dying_loses_nothing(tiny_zoo: Path, tiny_hub: str,
                                                                 tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.cli.demo_zoo import demo_zoo_suite
    from flows.recycle import recycle
    from zoo.eval import write_suite

    store = f"file://{tmp_path / 'store'}"
    # a shard without a heartbeat for 20 s is lost (a worker killed mid-shard reports nothing)
    os.environ.update({"ZOO_SHARD_SIZE": str(SHARD_SIZE), "ZOO_CANDIDATE_STORE": store, "ZOO_SHARD_LEASE_S": "20"})
    suite = write_suite(tmp_path / "suite.jsonl", demo_zoo_suite(tiny_zoo, max_per_task=2))
    catalog = str(tmp_path / "catalog.duckdb")

    def worker_env(name: str) -> dict[str, str]:
        """What a GPU machine sets: its own home (no shared volume), its checkout, its Prefect client home."""
        return {"ZOO_HOME": str(tmp_path / name / "home"), "ZOO_REPO_DIR": str(REPO_ROOT),
                "PREFECT_HOME": str(tmp_path / name / "client"), "PYTHONPATH": str(REPO_ROOT)}

    with prefect_api(tmp_path / "server") as api_url:
        _create_process_pool(POOL, REPO_ROOT / "infra" / "work-pools" / "process.json")
        one_shard_at_a_time = 1  # as a machine with one GPU
        with prefect_worker_process(POOL, api_url, tmp_path / "w1" / "worker.log", worker_env("w1"), "w1",
                                    one_shard_at_a_time) as (w1, log1), \
                prefect_worker_process(POOL, api_url, tmp_path / "w2" / "worker.log", worker_env("w2"), "w2",
                                       one_shard_at_a_time) as (_, log2):
            # deployed while the workers boot
            ids = [_prefect_deploy(name, POOL, {**worker_env("deploy"), "PREFECT_API_URL": api_url})
                   for name in DEPLOYMENTS]
            outcome: dict = {}

            def run_recycle() -> None:
                try:
                    outcome.update(recycle(suite=str(suite), endpoint=tiny_hub, candidates=CANDIDATES, k=2,
                                           max_examples=2, evaluate_deployment="evaluate-shard/evaluate-gpu",
                                           catalog_path=catalog,
                                           tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
                except Exception as err:  # noqa: BLE001  (reported by the assertion below)
                    outcome["error"] = err

            recycling = threading.Thread(target=contextvars.copy_context().run, args=(run_recycle,))
            recycling.start()
            killed = _stop_worker_mid_shard(w1, log1, ids[0], deadline=time.monotonic() + 400)
            recycling.join(timeout=600)
            assert not recycling.is_alive(), "recycle never finished"
            assert "error" not in outcome, f"{outcome.get('error')}\n{log_tail(log1)}\n{log_tail(log2)}"
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)))
    by_state = sorted(r.state_name for r in runs)
    assert by_state == ["Completed"] * 4 + ["Crashed"], by_state  # 4 shards, one of them handed out again
    assert {r.work_pool_name for r in runs} == {POOL}
    assert sorted({r.name.partition(" (")[0] for r in runs}) == [f"shard {i} of 4" for i in range(1, 5)]
    logs = {"w1": log1.read_text(), "w2": log2.read_text()}
    ran = {name: {str(r.id) for r in runs if _ran(r.id, text)} for name, text in logs.items()}
    assert ran["w1"] and ran["w2"], "both workers took shards"
    assert not ran["w1"] & ran["w2"] and len(ran["w1"] | ran["w2"]) == len(runs)
    assert killed in ran["w1"]
    (result,) = (v for k, v in outcome.items() if k != "error")
    assert result["registered"] and result["version"] == "1"
    with Catalog.open(catalog, read_only=True) as cat:
        candidates = cat.query("SELECT kind, method FROM candidates").to_pylist()
        evaluated = cat.query("SELECT candidate_key, count(*) AS n FROM evaluations WHERE held_in_tasks > 0 AND "
                              "held_out_tasks > 0 GROUP BY candidate_key").to_pylist()
        failures = cat.query("SELECT count(*) AS n FROM candidate_failures").column("n")[0].as_py()
    assert len(candidates) == 8 and failures == 0
    assert sorted((c["kind"], c["method"]) for c in candidates) == sorted(
        [("base", None), ("merge", "linear")] + [("merge", "linear"), ("merge", "ties"), ("library", "arrow")] * 2)
    assert len(evaluated) == 8 and {e["n"] for e in evaluated} == {1}  # every candidate scored, each once
    assert not (tmp_path / "w1" / "home" / "catalog.duckdb").exists()  # workers never touch a catalog
    assert not (tmp_path / "w2" / "home" / "catalog.duckdb").exists()


def _stop_worker_mid_shard(worker: subprocess.Popen, log: Path, deployment_id: str, deadline: float) -> str:
    """Once ``worker`` runs a flow run of the deployment (an evaluation shard), kill the worker and that run
    at once (SIGKILL: a machine lost, which reports nothing); returns the run's id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    of_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(deployment_filter=of_deployment)
            mine = [r for r in runs if r.state_name == "Running" and _ran(r.id, log.read_text())]
            if mine:
                for kill in (lambda: os.killpg(worker.pid, signal.SIGKILL),
                             lambda: os.kill(int(str(mine[0].infrastructure_pid).rpartition(":")[2]), signal.SIGKILL)):
                    try:
                        kill()
                    except (ProcessLookupError, ValueError):
                        pass
                worker.wait()
                return str(mine[0].id)
            time.sleep(0.5)
    raise AssertionError(f"worker 1 never ran an evaluation shard\n{log_tail(log)}")


def _ran(run_id: object, worker_log: str) -> bool:
    """Whether the worker of ``worker_log`` ran the flow run (its output, streamed into the worker's log, links
    to it; both workers may try to submit a run, and the one that loses logs its id too)."""
    return f"/flow-run/{run_id}" in worker_log


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
