"""A real Prefect server and real workers for integration tests (not a test module: a helper to import).

``prefect_api`` starts ``prefect server start`` on a free loopback port with its own ``PREFECT_HOME``
(so its own SQLite database), points this process's Prefect client at it, and stops it however the
block ends. ``prefect_worker`` runs ``prefect worker start`` against it the same way. Both log to files
whose tails go into assertion messages, since a worker's flow runs print nowhere else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.cli.ui import free_port, prefect_server, running, stop_process_group
from zoo.settings import TELEMETRY_OFF


@contextmanager
def prefect_api(directory: Path, scheduler: bool = False) -> Iterator[str]:
    """The API URL of a fresh Prefect server whose state lives in ``directory``.

    No UI, and no scheduler unless a test is about schedules: tests create their runs themselves, and a
    schedule firing mid-test would start runs nobody waits for.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    log = directory / "prefect-server.log"
    server = prefect_server(free_port(), directory / "prefect", log, ui=False, scheduler=scheduler)
    with running(server), temporary_settings({PREFECT_API_URL: f"{server.url}/api"}):
        try:
            yield f"{server.url}/api"
        finally:
            drain_prefect_workers()


@contextmanager
def prefect_worker(pool: str, api_url: str, log: Path, env: dict[str, str]) -> Iterator[Path]:
    """``prefect worker start --pool POOL`` in its own process group; yields its log file."""
    with prefect_worker_process(pool, api_url, log, env) as (_, log):
        yield log


@contextmanager
def prefect_worker_process(pool: str, api_url: str, log: Path, env: dict[str, str], name: str | None = None,
                           limit: int | None = None) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``prefect worker start --pool POOL [--name NAME] [--limit N]`` in its own process group; yields the
    process (a test may stop it early with ``stop_process_group``) and its log file. ``limit``: flow runs
    at once (a GPU machine runs one shard per GPU).

    ``env`` adds to this process's environment (e.g. ZOO_HOME, ZOO_REPO_DIR). The worker polls every
    second, not every ten, so that a test's run starts at once.
    """
    worker_env = {
        **os.environ,
        **TELEMETRY_OFF,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",  # the log names each run it submits
        **env,
    }
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool,
             *(["--name", name] if name else []), *(["--limit", str(limit)] if limit else [])],
            cwd=log.parent,
            env=worker_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield worker, log
    finally:
        stop_process_group(worker)


def log_tail(log: Path, lines: int = 60) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def drain_prefect_workers() -> None:
    """Send the logs and events still queued in this process before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()
    EventsWorker.drain_all()
