"""The MLflow registry of recycled candidates: one run per evaluated candidate, one registered model per
base model and suite, and a ``champion`` alias that moves only to a strictly better candidate.

Plain functions over an explicit tracking URI (the flows wrap them in Prefect tasks):
:func:`log_candidate` -> run id (idempotent per ``eval_key``), :func:`register_if_better` ->
:class:`Registration`, :func:`champion` -> :class:`ChampionInfo`. The logged model is
``tasks/mlflow_model.py`` logged as code: ``mlflow.pyfunc.load_model("models:/<name>@champion")``
gives a model whose ``predict(["prompt", ...])`` returns greedy completions.
"""

from tasks.registry.names import experiment_name, metric_key, registered_model_name
from tasks.registry.runs import CandidateRecord, ensure_model, log_candidate
from tasks.registry.store import use_tracking_uri
from tasks.registry.versions import CHAMPION, ChampionInfo, Registration, champion, is_better, register_if_better

__all__ = [
    "CHAMPION",
    "CandidateRecord",
    "ChampionInfo",
    "Registration",
    "champion",
    "ensure_model",
    "experiment_name",
    "is_better",
    "log_candidate",
    "metric_key",
    "register_if_better",
    "registered_model_name",
    "use_tracking_uri",
]
