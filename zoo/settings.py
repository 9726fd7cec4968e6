"""Settings of the embedded default, read from the environment.

Everything the tool writes lives under one home folder (``ZOO_HOME``, default ``./.zoo``) so that
``rm -rf .zoo`` resets it. Telemetry of every library is switched off before any of them is imported,
because the sites that run this tool are often offline and expect no calls home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC_HUB = "https://huggingface.co"
# Where `zoo ui` serves the Prefect and MLflow UIs by default (links in artifacts point there).
PREFECT_UI_PORT = 4200
MLFLOW_UI_PORT = 5000

# Environment that keeps Prefect, MLflow and huggingface_hub from calling home.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

# Services of Prefect's temporary API server that the embedded default has no use for: automations (the
# trigger service, which also runs their actions; the project defines none) and the event logger. That
# server keeps everything in one SQLite file, written by one writer at a time; the trigger service reads
# every event and writes the file every 5 s (sweeping automation buckets), queueing with the task-run
# recorder and the event persister. While a recycle keeps the CPUs busy its write waited past SQLite's
# busy timeout and it printed "database is locked" with a traceback to the user's terminal. A server
# that runs automations (`zoo serve`) switches them back on.
EPHEMERAL_SERVICES_OFF = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
}


DEFAULT_SHARD_SIZE = 8
DEFAULT_SHARD_RETRIES = 2
DEFAULT_SHARD_LEASE_S = 120
# How the shards of a step run without a deployment: one after the other in this process, or in parallel on a
# Dask cluster of this machine (flows/local_cluster.py: one worker process per GPU).
SHARD_RUNNERS = ("inline", "dask")


@dataclass(frozen=True)
class Settings:
    """Resolved settings; ``hf_token`` is kept out of ``repr`` so it never reaches a log."""

    home: Path
    hf_endpoint: str
    hf_token: str | None = field(default=None, repr=False)
    mlflow_tracking_uri: str | None = field(default=None, repr=False)  # may carry credentials
    # Candidates per shard: a shard loads the base model once for all of them, so fewer, bigger shards spend
    # less on start-up; more, smaller ones spread over more workers (docs/benchmarks.md measures the trade).
    shard_size: int = DEFAULT_SHARD_SIZE
    # How often a shard whose flow run crashed (its worker died) is handed out again.
    shard_retries: int = DEFAULT_SHARD_RETRIES
    # Seconds without a heartbeat after which a running shard is given up for lost and handed out again.
    shard_lease_s: float = DEFAULT_SHARD_LEASE_S
    # Where built candidate folders are kept: a local folder, or an fsspec URL (s3://..., gs://...) that
    # every worker reaches, so GPU workers need no shared volume. Empty: ``candidates_dir``.
    candidate_store_url: str = ""
    # Torch CPU threads while a process scores candidates; None: torch's default (every core). One process per
    # machine should use them all (2 threads scored 1.4x faster than 1 on 2 free cores); several workers or test
    # processes sharing the cores should take one each, or they fight for them.
    torch_threads: int | None = None
    # Without a deployment: ``inline`` runs shards one after the other here, ``dask`` runs them in parallel
    # on a local Dask cluster of ``dask_workers`` processes (``0``: one per GPU, or 2 on a machine without).
    shard_runner: str = "inline"
    dask_workers: int = 0

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.duckdb"

    @property
    def mlflow_uri(self) -> str:
        """``MLFLOW_TRACKING_URI`` (a team's server) or the embedded SQLite store under the home folder."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def demo_zoo_dir(self) -> Path:
        return self.home / "demo-zoo"

    @property
    def hub_cache(self) -> Path:
        """The huggingface_hub cache of the recycling steps (adapter, base model and dataset files)."""
        return self.home / "hub-cache"

    @property
    def candidates_dir(self) -> Path:
        """Built candidates, one folder per candidate key (a PEFT adapter or a routed library)."""
        return self.home / "candidates"

    @property
    def candidate_store(self) -> str:
        """The candidate store's URL or folder (``ZOO_CANDIDATE_STORE``, default ``candidates_dir``)."""
        return self.candidate_store_url or str(self.candidates_dir)

    @property
    def suites_dir(self) -> Path:
        return self.home / "suites"

    @property
    def locks_dir(self) -> Path:
        """Lock files of this machine's writers (the catalog's lock sits beside the catalog itself)."""
        return self.home / "locks"


def load_settings() -> Settings:
    """Read ``ZOO_HOME``, ``HF_ENDPOINT``, ``HF_TOKEN``, ``MLFLOW_TRACKING_URI`` and the sharding settings
    (``ZOO_SHARD_SIZE``, ``ZOO_SHARD_RETRIES``, ``ZOO_SHARD_LEASE_S``, ``ZOO_CANDIDATE_STORE``,
    ``ZOO_SHARD_RUNNER``, ``ZOO_DASK_WORKERS``) and ``ZOO_TORCH_THREADS`` (0 or unset: every core) with their
    defaults."""
    home = Path(os.environ.get("ZOO_HOME", ".zoo")).expanduser().resolve()
    endpoint = os.environ.get("HF_ENDPOINT", PUBLIC_HUB).rstrip("/")
    token = os.environ.get("HF_TOKEN") or None
    return Settings(home=home, hf_endpoint=endpoint, hf_token=token,
                    mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
                    shard_size=_positive_int("ZOO_SHARD_SIZE", DEFAULT_SHARD_SIZE),
                    shard_retries=_positive_int("ZOO_SHARD_RETRIES", DEFAULT_SHARD_RETRIES, minimum=0),
                    shard_lease_s=_positive_int("ZOO_SHARD_LEASE_S", DEFAULT_SHARD_LEASE_S, minimum=10),
                    candidate_store_url=os.environ.get("ZOO_CANDIDATE_STORE", ""),
                    torch_threads=_positive_int("ZOO_TORCH_THREADS", 0, minimum=0) or None,
                    shard_runner=_choice("ZOO_SHARD_RUNNER", SHARD_RUNNERS),
                    dask_workers=_positive_int("ZOO_DASK_WORKERS", 0, minimum=0))


def _positive_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw}: must be a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw}: must be at least {minimum}")
    return value


def _choice(name: str, choices: tuple[str, ...]) -> str:
    """The value of ``name`` if it is one of ``choices`` (the first is the default)."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ValueError(f"{name}={raw}: must be one of {', '.join(choices)}")
    return raw


def apply_environment(settings: Settings | None = None) -> Settings:
    """Switch telemetry and unused Prefect server services off and point Prefect's state under the home
    folder (created if missing).

    Values the user already set win (``setdefault``), so a team can point the tool at its own
    Prefect server with ``PREFECT_API_URL``.
    """
    settings = settings or load_settings()
    for key, value in {**TELEMETRY_OFF, **EPHEMERAL_SERVICES_OFF}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    # Prefect's temporary API server cold-starts in 10-40 s on a busy 2-core machine; its default wait is 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Prefect cannot create its SQLite store when its home folder is missing (fresh checkout).
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    return settings
