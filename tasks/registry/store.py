"""The MLflow store: an explicit client per tracking URI, and the process-wide URI only where MLflow's API
reads nothing else (``start_run``, ``pyfunc.log_model``, ``models:/`` URIs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

ARTIFACTS = "mlflow-artifacts"  # next to mlflow.db: Settings.mlflow_artifacts under ZOO_HOME
SQLITE = "sqlite:///"
# Prefect runs tasks in threads; the process-wide tracking URI must not change under another one's run.
_FLUENT = threading.RLock()


def client(tracking_uri: str) -> MlflowClient:
    """A client whose tracking and registry are both ``tracking_uri`` (the embedded default keeps both there)."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@contextmanager
def use_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at ``tracking_uri`` for the block, then put back what was there before.

    Blocks are serialised between threads. ``mlflow.pyfunc.load_model("models:/<name>@champion")``
    inside the block reads the registry of ``tracking_uri``.
    """
    with _FLUENT:
        previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        mlflow.set_tracking_uri(tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)  # None: back to MLflow's own default


def experiment_id(mlflow_client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (or restored from the bin) when needed."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is None:
        try:
            return mlflow_client.create_experiment(name, artifact_location=artifact_root(tracking_uri))
        except MlflowException as err:
            if not is_error(err, RESOURCE_ALREADY_EXISTS):  # another process created it just now
                raise
            found = mlflow_client.get_experiment_by_name(name)
    if found.lifecycle_stage == "deleted":
        mlflow_client.restore_experiment(found.experiment_id)
    return found.experiment_id


def artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a SQLite store go next to its database file (MLflow's default is ``./mlruns`` under
    whatever the working directory is); a tracking server decides for itself (``None``)."""
    if not tracking_uri.startswith(SQLITE):
        return None
    database = Path(unquote(tracking_uri[len(SQLITE):])).expanduser().resolve()
    return (database.parent / ARTIFACTS).as_uri()


def is_error(err: MlflowException, code: int) -> bool:
    return err.error_code == ErrorCode.Name(code)


def missing(err: MlflowException) -> bool:
    return is_error(err, RESOURCE_DOES_NOT_EXIST)
