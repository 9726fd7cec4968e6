"""The ``gpu`` work pool end to end: a real Prefect server, a real worker, deployments of infra/prefect.yaml.

What a GPU machine does (``prefect worker start --pool gpu``), on loopback with a process pool: the pool
gets the base job template of infra/work-pools/process.json, ``prefect deploy`` registers the build and
evaluate deployments of infra/prefect.yaml from this checkout (their pull step moves each run into
ZOO_REPO_DIR, read in the worker's environment), ``recycle`` hands them its building and evaluation steps,
the worker runs each in a subprocess, and the results land in the catalog where recycle reads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect_server import log_tail, prefect_api, prefect_worker

from catalog import Catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
POOL = "gpu"

# The deployments of infra/prefect.yaml that the worker runs (sent to POOL whatever the file says): recycle
# hands them its building and evaluation steps.
DEPLOYMENTS = ("build-candidates-gpu", "evaluate-gpu")
CANDIDATES = {"experts": False, "libraries_over_all": False, "merge_methods": [], "routers": ["arrow"]}


def test_recycle_builds_and_evaluates_on_a_gpu_pool_worker(tiny_zoo: Path, tiny_hub: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.cli.demo_zoo import demo_zoo_suite
    from flows.recycle import recycle
    from zoo.eval import write_suite

    # what a worker machine sets: its home, its checkout (the pull step's ZOO_REPO_DIR), its Prefect client home
    # (ZOO_HOME is shared with this process, as a team shares it on a volume: the built candidates live there)
    env = {"ZOO_HOME": os.environ["ZOO_HOME"], "ZOO_REPO_DIR": str(REPO_ROOT), "PREFECT_HOME": str(tmp_path / "client")}
    suite = write_suite(tmp_path / "suite.jsonl", demo_zoo_suite(tiny_zoo, max_per_task=2))
    catalog = str(tmp_path / "catalog.duckdb")
    with prefect_api(tmp_path / "server") as api_url:
        _create_process_pool(POOL, REPO_ROOT / "infra" / "work-pools" / "process.json")
        with prefect_worker(POOL, api_url, tmp_path / "worker.log", env) as worker_log:
            # deployed while the worker boots
            ids = [_prefect_deploy(name, POOL, {**env, "PREFECT_API_URL": api_url}) for name in DEPLOYMENTS]
            try:
                outcome = recycle(suite=str(suite), endpoint=tiny_hub, candidates=CANDIDATES, k=2, max_examples=2,
                                  build_deployment="build-candidates/build-candidates-gpu",
                                  evaluate_deployment="evaluate-candidates/evaluate-gpu", catalog_path=catalog,
                                  tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
            except Exception as err:
                raise AssertionError(log_tail(worker_log)) from err
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)))
    assert sorted(r.state_name for r in runs) == ["Completed", "Completed"]
    assert {r.work_pool_name for r in runs} == {POOL}
    assert all(str(r.id) in worker_log.read_text() for r in runs), "a run was not submitted by the worker"
    (result,) = outcome.values()
    assert result["registered"] and result["version"] == "1"
    with Catalog.open(catalog, read_only=True) as cat:
        candidates = cat.query("SELECT kind, method FROM candidates").to_pylist()
        evaluated = cat.query("SELECT count(*) AS n FROM evaluations WHERE held_in_tasks > 0 AND held_out_tasks > 0")
    assert {(c["kind"], c["method"]) for c in candidates} == {("base", None), ("merge", "linear"),
                                                              ("library", "arrow")}
    assert evaluated.column("n")[0].as_py() == len(candidates)


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
