"""One MLflow run per evaluated candidate: params, metrics, tags, plots, ``candidate.json`` and the model.

A run is found again by its ``zoo.eval_key`` tag (candidate + suite + evaluation settings), so logging
the same evaluation twice, e.g. when a flow is retried, returns the first run and logs nothing. Only
finished runs count: a run that failed half-way is left as FAILED and the next attempt logs a new one.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from tasks.mlflow_model import SIGNATURE
from tasks.registry.names import experiment_name, flatten, safe_keys, truncated
from tasks.registry.store import client, experiment_id, use_tracking_uri
from zoo.adapters.files import ADAPTER_FILES
from zoo.candidates import get_kind
from zoo.candidates.kinds.adapter_folder import ADAPTER
from zoo.candidates.kinds.library import LIBRARY
from zoo.library.library import MANIFEST

MODEL_NAME = "model"  # the logged model: runs:/<run_id>/model
MODEL_CODE = Path(__file__).resolve().parents[1] / "mlflow_model.py"
CANDIDATE_JSON = "candidate.json"
CANDIDATE_DIR = "candidate"  # the adapter or library folder itself
PLOTS = "plots"
# What the model code imports besides the zoo package itself (MLflow adds its own pin).
MODEL_REQUIREMENTS = ("torch", "transformers", "safetensors", "tokenizers", "huggingface-hub", "pandas")
BATCH = 100  # MLflow takes at most 100 params per log_batch call

TAG_CANDIDATE_KEY = "zoo.candidate_key"
TAG_EVAL_KEY = "zoo.eval_key"
TAG_SUITE_HASH = "zoo.suite_hash"
TAG_KIND = "zoo.kind"
TAG_MEMBER = "zoo.member.{}"
_KEY = re.compile(r"^[A-Za-z0-9._:-]+$")


@dataclass(frozen=True, kw_only=True)
class CandidateRecord:
    """Everything a run records about one evaluated candidate.

    ``key``: the candidate's content hash; ``eval_key``: hash of key + suite hash + evaluation settings.
    ``artifact_dir``: the candidate's folder (``zoo.candidates``: a PEFT adapter, or a routed library with its
    experts copied in), ``None`` for kinds without one (the base). ``metrics``: e.g. ``held-out_exact_match``,
    ``exact_match/<task>``, ``build_s``; task names are made MLflow-safe when logged.
    """

    key: str
    eval_key: str
    name: str
    kind: str
    base_model_dir: Path
    suite_name: str
    suite_hash: str
    method: str | None = None
    members: Sequence[str] = ()
    member_shas: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    artifact_dir: Path | None = None
    plots: Sequence[Path] = ()

    def __post_init__(self) -> None:
        for label, value in (("key", self.key), ("eval_key", self.eval_key), ("suite_hash", self.suite_hash)):
            if not _KEY.match(value):
                raise ValueError(f"{label} {value!r} is not a hash (letters, digits, '.', '_', ':', '-')")
        needs_folder = get_kind(self.kind).artifact is not None
        if needs_folder == (self.artifact_dir is None):
            raise ValueError(f"a {self.kind} candidate {'needs an' if needs_folder else 'has no'} artifact_dir")

    def to_json(self, base_model: str) -> dict[str, Any]:
        return json.loads(json.dumps({"base_model": base_model, **asdict(self)}, default=str))


def log_candidate(tracking_uri: str, base_model: str, record: CandidateRecord, with_model: bool = True) -> str:
    """Log ``record`` as a run of the base model's experiment; returns the run id (the existing run's, if
    this ``eval_key`` was logged before).

    The candidate's folder is logged under ``candidate/``. ``with_model=False`` leaves out the pyfunc model
    (it copies the base model): a pipeline logs it with :func:`ensure_model` for the one it registers.
    """
    artifacts = model_artifacts(record)
    missing_plots = [str(p) for p in record.plots if not Path(p).is_file()]
    if missing_plots:
        raise ValueError(f"missing plot files: {', '.join(missing_plots)}")
    mlflow_client = client(tracking_uri)
    with use_tracking_uri(tracking_uri):
        experiment = experiment_id(mlflow_client, experiment_name(base_model), tracking_uri)
        found = run_for_eval_key(mlflow_client, experiment, record.eval_key)
        if found is not None:
            return found
        with mlflow.start_run(experiment_id=experiment, run_name=record.name, tags=run_tags(record)) as run:
            run_id = run.info.run_id
            _log_values(mlflow_client, run_id, run_params(record, base_model), run_metrics(record))
            mlflow_client.log_dict(run_id, record.to_json(base_model), CANDIDATE_JSON)
            for plot in record.plots:
                mlflow_client.log_artifact(run_id, str(plot), PLOTS)
            if record.artifact_dir is not None:
                mlflow_client.log_artifacts(run_id, str(record.artifact_dir), CANDIDATE_DIR)
            if with_model:
                _log_model(artifacts)
    return run_id


def ensure_model(tracking_uri: str, run_id: str, record: CandidateRecord) -> None:
    """Log the pyfunc model into the candidate's existing run, unless it holds one already."""
    mlflow_client = client(tracking_uri)
    run = mlflow_client.get_run(run_id)
    if run.data.tags.get(TAG_EVAL_KEY) != record.eval_key:
        raise ValueError(f"run {run_id} is not the run of evaluation {record.eval_key}")
    found = mlflow_client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'")
    if found:
        return
    artifacts = model_artifacts(record)
    with use_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id):
        _log_model(artifacts)


def run_for_eval_key(mlflow_client: MlflowClient, experiment: str, eval_key: str) -> str | None:
    """The finished run of this evaluation, if there is one (the oldest, should a race have made two)."""
    finished = RunStatus.to_string(RunStatus.FINISHED)
    runs = mlflow_client.search_runs(
        [experiment], filter_string=f"tags.`{TAG_EVAL_KEY}` = '{eval_key}' AND attributes.status = '{finished}'",
        order_by=["attributes.start_time ASC"], max_results=1,
    )
    return runs[0].info.run_id if runs else None


def model_artifacts(record: CandidateRecord) -> dict[str, str]:
    """The pyfunc model's artifacts (see ``tasks/mlflow_model.py``), each folder checked before anything is
    logged; a library must carry its experts, or the registered model would need the hub to load."""
    base = Path(record.base_model_dir)
    _require(base, ("config.json",), "base model")
    artifact = get_kind(record.kind).artifact
    if artifact is None:
        return {"base_model": str(base)}
    folder = Path(record.artifact_dir)
    if artifact == ADAPTER:
        _require(folder, ADAPTER_FILES, "adapter")
        return {"base_model": str(base), ADAPTER: str(folder)}
    _require(folder, (MANIFEST,), "library")
    members = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["members"]
    if not all(m.get("copied") for m in members):
        raise ValueError(f"library {folder} references its experts; save it with copy_experts=True to log it")
    return {"base_model": str(base), LIBRARY: str(folder)}


def _require(folder: Path, files: Sequence[str], what: str) -> None:
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{what} folder {folder} lacks {', '.join(missing)}")


def run_tags(record: CandidateRecord) -> dict[str, str]:
    tags = {TAG_CANDIDATE_KEY: record.key, TAG_EVAL_KEY: record.eval_key, TAG_SUITE_HASH: record.suite_hash,
            TAG_KIND: record.kind, "zoo.suite_name": record.suite_name}
    for i, repo_id in enumerate(record.members):
        sha = record.member_shas.get(repo_id)
        tags[TAG_MEMBER.format(i)] = truncated(f"{repo_id}@{sha}" if sha else repo_id, MAX_TAG_VAL_LENGTH, "...")
    return tags


def run_params(record: CandidateRecord, base_model: str) -> dict[str, str]:
    """Kind, method, members and the flattened settings; a value over MLflow's limit is cut with a note
    (``candidate.json`` holds it whole)."""
    params = {"kind": record.kind, "method": record.method or "none", "base_model": base_model,
              "suite": record.suite_name, "members_count": len(record.members),
              "members": ", ".join(record.members) or "none",
              **{f"settings.{k}": v for k, v in flatten(record.settings).items()}}
    note = f" ... (truncated; see {CANDIDATE_JSON})"
    return {k: truncated(_param_text(v), MAX_PARAM_VAL_LENGTH, note) for k, v in safe_keys(params).items()}


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def run_metrics(record: CandidateRecord) -> dict[str, float]:
    return {k: float(v) for k, v in safe_keys(record.metrics).items() if v is not None}


def _log_values(mlflow_client: MlflowClient, run_id: str, params: Mapping[str, str],
                metrics: Mapping[str, float]) -> None:
    now = get_current_time_millis()
    param_list = [Param(k, v) for k, v in params.items()]
    metric_list = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for start in range(0, max(len(param_list), len(metric_list)), BATCH):
        mlflow_client.log_batch(run_id, metrics=metric_list[start: start + BATCH],
                                params=param_list[start: start + BATCH])


def _log_model(artifacts: Mapping[str, str]) -> None:
    """The pyfunc model from code, in the active run. No input example: MLflow would load the model and
    generate just to validate it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example was not provided.*", category=UserWarning)
        mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=str(MODEL_CODE), artifacts=dict(artifacts),
                                signature=SIGNATURE, pip_requirements=model_requirements())


def model_requirements() -> list[str]:
    """Pins of the installed versions; the zoo package itself must be installed where the model is loaded."""
    pins = []
    for dist in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins
