"""infra/ as files the team runs: deployments, work-pool templates, the image, the compose stack; and ``zoo ui``.

No Docker or Kubernetes here, so these read the files the way their tools would and pin what each one
must say: the right pools and schedules, a GPU request, every template variable declared, telemetry off,
no secret written down. ``zoo ui --check`` starts the real servers.
"""

from __future__ import annotations

import ast
import json
import re
import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from zoo.settings import TELEMETRY_OFF

REPO_ROOT = Path(__file__).resolve().parents[1]
INFRA = REPO_ROOT / "infra"
WORKER_IMAGE = "zoo-recycler-worker:latest"
# What a leaked Hugging Face token looks like.
TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")


def _deployments() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    return {entry["name"]: entry for entry in spec["deployments"]}


def _template(name: str) -> dict[str, Any]:
    return json.loads((INFRA / "work-pools" / name).read_text())


def _defaults(template: dict[str, Any]) -> dict[str, Any]:
    return {key: spec["default"] for key, spec in template["variables"]["properties"].items() if "default" in spec}


def _strings(value: Any) -> list[str]:
    """Every string in a parsed JSON/YAML document, keys included."""
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (str(key), *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


# --- infra/prefect.yaml ---------------------------------------------------------------------------------


def test_deployments_go_to_their_pools_on_their_schedules() -> None:
    deployments = _deployments()
    assert set(deployments) == {"crawl-hub-hourly", "recycle-daily", "build-candidates-gpu", "evaluate-gpu"}
    where = {name: (d["entrypoint"], d["work_pool"]["name"]) for name, d in deployments.items()}
    assert where == {
        "crawl-hub-hourly": ("flows/crawl.py:crawl_hub", "zoo-process"),
        "recycle-daily": ("flows/recycle.py:recycle", "zoo-process"),
        "build-candidates-gpu": ("flows/shards.py:build_candidates_shard", "gpu"),
        "evaluate-gpu": ("flows/shards.py:evaluate_candidates_shard", "gpu"),
    }
    hourly, daily = (deployments[name]["schedules"] for name in ("crawl-hub-hourly", "recycle-daily"))
    assert [_cron_period(s) for s in hourly] == ["hourly"]
    assert [_cron_period(s) for s in daily] == ["daily"]
    for name in ("build-candidates-gpu", "evaluate-gpu"):  # recycle submits one run per shard
        assert not deployments[name].get("schedules")
    assert deployments["recycle-daily"]["parameters"] == {
        "build_deployment": "build-shard/build-candidates-gpu", "evaluate_deployment": "evaluate-shard/evaluate-gpu"}


def _cron_period(schedule: dict[str, Any]) -> str:
    """'hourly' or 'daily' for a valid cron that fires once an hour or once a day."""
    from prefect.client.schemas.schedules import CronSchedule

    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises on a bad cron or zone
    minute, hour, *days = schedule["cron"].split()
    assert minute.isdigit() and days == ["*", "*", "*"] and schedule.get("active", True), schedule
    return "hourly" if hour == "*" else "daily" if hour.isdigit() else hour


def test_every_entrypoint_names_a_flow_function_of_this_checkout() -> None:
    """Read, not imported: a missing file or a renamed function breaks `prefect deploy` and every worker."""
    for name, deployment in _deployments().items():
        path, function = deployment["entrypoint"].split(":")
        source = REPO_ROOT / path
        assert source.is_file(), f"{name}: {path} does not exist"
        tree = ast.parse(source.read_text())
        functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert function in functions, f"{name}: {path} defines no {function}()"
        decorators = [ast.unparse(d) for d in functions[function].decorator_list]
        assert any(d.startswith("flow") for d in decorators), f"{name}: {function}() is not a @flow"


def test_the_pull_step_runs_flows_from_the_workers_checkout() -> None:
    spec = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    (step,) = spec["pull"]
    assert step == {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $ZOO_REPO_DIR }}"}}
    assert spec["prefect-version"] == _pinned("prefect")


# --- infra/work-pools/ ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["process.json", "kubernetes-gpu.json"])
def test_a_pool_template_declares_every_placeholder_and_its_defaults_fit_their_schema(name: str) -> None:
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.schema_tools import validate

    template = _template(name)
    validate_base_job_template(template)  # the check the server runs when a pool is created
    validate(_defaults(template), template["variables"], raise_on_error=True)
    assert not [s for s in _strings(template) if TOKEN_PATTERN.search(s)]


def test_the_process_template_is_prefects_own_with_telemetry_off() -> None:
    from prefect.workers.process import ProcessWorker

    template, default = _template("process.json"), ProcessWorker.get_default_base_job_template()
    assert template["job_configuration"] == default["job_configuration"]
    assert set(template["variables"]["properties"]) == set(default["variables"]["properties"])
    env = _defaults(template)["env"]
    assert env.items() >= TELEMETRY_OFF.items()
    assert env["PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES"] == "false"


def test_the_kubernetes_job_gets_one_gpu_the_worker_image_and_the_token_from_a_secret() -> None:
    from prefect.utilities.templating import apply_values

    template = _template("kubernetes-gpu.json")
    defaults = _defaults(template)
    job = apply_values(template["job_configuration"], defaults)["job_manifest"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == WORKER_IMAGE
    raw = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert raw["args"] == "{{ command }}" and "command" not in raw  # the run command replaces the image's CMD only
    env = defaults["env"]
    assert env["HF_ENDPOINT"].startswith("https://") and env.items() >= TELEMETRY_OFF.items()
    # the job's ZOO_HOME is its own scratch space, no shared volume: shards never open the catalog and candidate
    # folders go to the candidate store, whose credentials come from an optional secret
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == env["ZOO_HOME"]
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"] and set(volume) == {"name", "emptyDir"}
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    (store_secret,) = container["envFrom"]
    assert store_secret["secretRef"] == {"name": defaults["candidate_store_secret"], "optional": True}
    # HF_TOKEN: only ever a reference to a Kubernetes secret, never a value
    assert "HF_TOKEN" not in env
    (token,) = [e for e in container["env"] if e["name"] == "HF_TOKEN"]
    assert set(token) == {"name", "valueFrom"} and set(token["valueFrom"]) == {"secretKeyRef"}
    assert token["valueFrom"]["secretKeyRef"]["name"] == defaults["hf_token_secret"]


# --- infra/Dockerfile -------------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (INFRA / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_worker_image_pins_the_cuda_torch_and_starts_a_gpu_worker() -> None:
    instructions = _dockerfile()
    commands = [args for op, args in instructions if op == "RUN"]
    base = next(args for op, args in instructions if op == "ARG" and args.startswith("CUDA_IMAGE="))
    assert base.startswith("CUDA_IMAGE=nvidia/cuda:") and "runtime" in base
    assert any(f"pip install torch=={_pinned('torch')}" in c for c in commands)  # same pin as pyproject.toml
    assert any("pip install --no-deps ." in c for c in commands)
    (cmd,) = [args for op, args in instructions if op == "CMD"]
    assert json.loads(cmd) == ["prefect", "worker", "start", "--pool", "gpu"]
    # no ENTRYPOINT: the pool's Kubernetes jobs run this image with their own command as `args`
    assert not [args for op, args in instructions if op == "ENTRYPOINT"]
    env = " ".join(args for op, args in instructions if op == "ENV")
    assert all(f"{key}={value}" in env for key, value in TELEMETRY_OFF.items())
    assert "ZOO_REPO_DIR=/opt/zoo-recycler" in env and ("WORKDIR", "/opt/zoo-recycler") in instructions
    ignored = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", ".zoo", ".git", ".env"} <= set(ignored)


def _pinned(package: str) -> str:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d.split("==")[1] for d in dependencies if d.startswith(f"{package}==")]
    return pin


# --- infra/docker-compose.yml -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "docker-compose.yml").read_text())


def test_compose_runs_prefect_on_postgres_mlflow_lean_and_a_process_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "mlflow", "deploy", "process-worker", "gpu-worker"}
    prefect, mlflow = services["prefect-server"], services["mlflow"]
    assert prefect["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "--workers=1" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert [s for s in mlflow["command"] if s.startswith("--backend-store-uri=sqlite:////")]
    assert _published(prefect) == ["4200"] and _published(mlflow) == ["5000"]
    assert services["process-worker"]["command"][:5] == ["prefect", "worker", "start", "--pool", "zoo-process"]
    gpu = services["gpu-worker"]
    assert gpu["profiles"] == ["gpu"] and "command" not in gpu  # the image's own: a worker of the gpu pool
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    for name in ("deploy", "process-worker", "gpu-worker"):
        environment = services[name]["environment"]
        assert environment["PREFECT_API_URL"] == "http://prefect-server:4200/api", name
        assert environment["ZOO_REPO_DIR"] == "/opt/zoo-recycler", name
    # GPU workers share no volume with the orchestrator: their home is their own, candidates go to the store
    assert "zoo-home:/data/zoo" not in gpu.get("volumes", [])
    assert services["process-worker"]["environment"]["ZOO_CANDIDATE_STORE"] == gpu["environment"]["ZOO_CANDIDATE_STORE"]


def test_compose_services_of_the_image_keep_telemetry_off(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service["image"] == WORKER_IMAGE:
            assert service["environment"].items() >= TELEMETRY_OFF.items(), name


def test_compose_commits_no_secret(compose: dict[str, Any]) -> None:
    """Passwords and tokens only as ${VARIABLE} substitutions; loopback unless ZOO_BIND says otherwise."""
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:?[-?][^}]*\}", value), (name, key)
        for value in _strings(service.get("environment") or {}):
            assert not TOKEN_PATTERN.search(value), name
            if "@postgres:" in value:  # a connection URL carries the password by substitution only
                assert re.search(r":\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:", value), (name, value)
        for port in service.get("ports", []):
            assert port.startswith("${ZOO_BIND:-127.0.0.1}:"), (name, port)


def test_compose_deploy_job_uses_the_files_of_this_directory(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["deploy"]["command"])
    for path in re.findall(r"infra/[\w./-]+", command):
        assert (REPO_ROOT / path).is_file(), path
    assert "deploy --all --prefect-file infra/prefect.yaml" in command


def _published(service: dict[str, Any]) -> list[str]:
    return [port.rsplit(":", 1)[1] for port in service["ports"]]


# --- zoo ui -----------------------------------------------------------------------------------------------


def test_zoo_ui_check_starts_both_uis_on_loopback_and_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo"))
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "zoo" / "prefect"))
    result = CliRunner().invoke(app, ["ui", "--check", "--prefect-port", "0", "--mlflow-port", "0"])
    assert result.exit_code == 0, result.output
    prefect_url = re.search(r"Prefect UI\s+(http://127\.0\.0\.1:\d+)", result.output).group(1)
    mlflow_url = re.search(r"MLflow UI\s+(http://127\.0\.0\.1:\d+)", result.output).group(1)
    assert f"export PREFECT_API_URL={prefect_url}/api" in result.output
    assert "Prefect server: UI page answered" in result.output and "MLflow server: UI page answered" in result.output
    for url in (prefect_url, mlflow_url):  # stopped: nothing listens there any more
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0, url
    assert (tmp_path / "zoo" / "mlflow.db").is_file()  # the MLflow UI read the project's store
