"""Model versions and the ``champion`` alias: a candidate is registered only if it beats the champion.

The score travels with each version as tags (``zoo.held_out_exact_match``, ``zoo.held_out_nll``), so the
comparison needs nothing but the registry. Better is ``zoo.eval.ranking.is_better``, the rule the
leaderboard ranks by, so the candidate ranked first is the one that can take the alias. Serving code
pulls ``models:/<name>@champion``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.entities.model_registry.model_version_status import ModelVersionStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

from tasks.registry.runs import MODEL_NAME, TAG_CANDIDATE_KEY, TAG_EVAL_KEY, TAG_KIND, TAG_SUITE_HASH
from tasks.registry.store import client, is_error, missing, use_tracking_uri
from zoo.eval.ranking import Score, is_better

CHAMPION = "champion"
TAG_EXACT_MATCH = "zoo.held_out_exact_match"
TAG_NLL = "zoo.held_out_nll"
AWAIT_READY_S = 300
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")

@dataclass(frozen=True)
class Registration:
    """What :func:`register_if_better` did: ``version`` is the new version, or the one that already holds
    this evaluation; ``champion_version`` the champion afterwards (``None``: there is none)."""

    registered: bool
    version: str | None
    champion_version: str | None
    reason: str


@dataclass(frozen=True)
class ChampionInfo:
    """The version the ``champion`` alias points at, with the run and score it was registered from."""

    version: str
    run_id: str | None
    candidate_key: str | None
    eval_key: str | None
    score: Score


def register_if_better(tracking_uri: str, model_name: str, run_id: str, score: Score, *,
                       await_ready_s: int = AWAIT_READY_S,
                       serialised: Callable[[], AbstractContextManager[object]] = nullcontext) -> Registration:
    """Register ``runs:/<run_id>/model`` as a new version of ``model_name`` and move ``champion`` to it, if
    there is no champion or the candidate beats it; otherwise (or when its evaluation is registered
    already) change nothing. ``run_id`` is a run made by :func:`tasks.registry.log_candidate`.

    ``serialised`` is held from reading the champion to moving the alias (the flows pass the registry's
    turn, ``tasks.turns``), so two registrations racing are decided one after the other; the alias moves
    only if the champion read at the start still holds it (compare-and-set), whatever ``serialised`` is."""
    if not _NAME.match(model_name):
        raise ValueError(f"model name {model_name!r}: use registered_model_name() or letters, digits, '._-'")
    mlflow_client = client(tracking_uri)
    run = mlflow_client.get_run(run_id)
    eval_key = run.data.tags.get(TAG_EVAL_KEY)
    if eval_key is None:
        raise ValueError(f"run {run_id} has no {TAG_EVAL_KEY} tag; log it with log_candidate first")
    _ensure_model(mlflow_client, model_name)
    with serialised():
        current = _champion_version(mlflow_client, model_name)
        current_version = str(current.version) if current else None
        done = _version_of(mlflow_client, model_name, eval_key)
        if done is not None:
            return Registration(False, str(done.version), current_version,
                                f"already registered as version {done.version}")
        if current is not None and not is_better(score, _score(current)):
            reason = f"{_text(score)} does not beat champion version {current.version} ({_text(_score(current))})"
            return Registration(False, None, current_version, reason)
        version = _create_version(mlflow_client, model_name, run, score, await_ready_s)
        holder = _move_champion(mlflow_client, model_name, expected=current_version, to=version)
    if holder != version:
        return Registration(False, version, holder, f"version {version} created, but the champion moved to "
                            f"version {holder} meanwhile, so it stays there")
    beaten = f"beats version {current_version}" if current else "first champion"
    return Registration(True, version, version, f"{_text(score)}: {beaten}")


def _move_champion(mlflow_client: MlflowClient, model_name: str, expected: str | None, to: str) -> str | None:
    """Compare-and-set: point ``champion`` at ``to`` only if it still points at ``expected``; returns the
    champion afterwards. MLflow has no atomic alias swap, so without a turn around the caller another
    writer could still slip in between this read and the write; with it, nobody on this machine does."""
    now = _champion_version(mlflow_client, model_name)
    now_version = str(now.version) if now else None
    if now_version != expected:
        return now_version
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, to)
    return to


def champion(tracking_uri: str, model_name: str) -> ChampionInfo | None:
    """The current champion of ``model_name``; ``None`` if the model or its alias does not exist."""
    version = _champion_version(client(tracking_uri), model_name)
    if version is None:
        return None
    tags = version.tags
    return ChampionInfo(version=str(version.version), run_id=version.run_id, candidate_key=tags.get(TAG_CANDIDATE_KEY),
                        eval_key=tags.get(TAG_EVAL_KEY), score=_score(version))


def _ensure_model(mlflow_client: MlflowClient, model_name: str) -> None:
    try:
        mlflow_client.create_registered_model(model_name, description="Best recycled candidate per evaluation "
                                              "suite; serve models:/<name>@champion.")
    except MlflowException as err:
        if not is_error(err, RESOURCE_ALREADY_EXISTS):
            raise


def _champion_version(mlflow_client: MlflowClient, model_name: str) -> ModelVersion | None:
    """Read through the model's aliases: a missing alias is an error code that differs between stores."""
    try:
        version = mlflow_client.get_registered_model(model_name).aliases.get(CHAMPION)
    except MlflowException as err:
        if missing(err):
            return None
        raise
    return None if version is None else mlflow_client.get_model_version(model_name, str(version))


def _version_of(mlflow_client: MlflowClient, model_name: str, eval_key: str) -> ModelVersion | None:
    found = mlflow_client.search_model_versions(f"name = '{model_name}' AND tags.`{TAG_EVAL_KEY}` = '{eval_key}'")
    return found[0] if found else None


def _create_version(mlflow_client: MlflowClient, model_name: str, run: Run, score: Score,
                    await_ready_s: int) -> str:
    """A version from the run's logged model (MLflow 3 keeps it as a logged model, not a run folder)."""
    model_id = _logged_model_id(mlflow_client, run)
    tags = {TAG_EXACT_MATCH: repr(float(score[0])), TAG_NLL: repr(float(score[1])), **{
        t: run.data.tags[t] for t in (TAG_CANDIDATE_KEY, TAG_EVAL_KEY, TAG_SUITE_HASH, TAG_KIND) if t in run.data.tags}}
    # The SQL registry resolves a models:/ source through the process-wide tracking URI, not this client's.
    with use_tracking_uri(mlflow_client.tracking_uri):
        version = mlflow_client.create_model_version(model_name, f"models:/{model_id}", run_id=run.info.run_id,
                                                     tags=tags, await_creation_for=await_ready_s, model_id=model_id)
    status = mlflow_client.get_model_version(model_name, version.version).status
    if status != ModelVersionStatus.to_string(ModelVersionStatus.READY):
        raise RuntimeError(f"{model_name} version {version.version} is {status}, not READY, after {await_ready_s} s")
    return str(version.version)


def _logged_model_id(mlflow_client: MlflowClient, run: Run) -> str:
    found = mlflow_client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}' AND name = '{MODEL_NAME}'")
    if not found:
        raise ValueError(f"run {run.info.run_id} logged no model named {MODEL_NAME!r}")
    return found[0].model_id


def _score(version: ModelVersion) -> Score:
    return _tag_float(version, TAG_EXACT_MATCH), _tag_float(version, TAG_NLL)


def _tag_float(version: ModelVersion, tag: str) -> float:
    try:
        return float(version.tags[tag])
    except (KeyError, ValueError):
        return math.nan


def _text(score: Score) -> str:
    return f"held-out exact match {score[0]:.4f}, NLL {score[1]:.4f}"
