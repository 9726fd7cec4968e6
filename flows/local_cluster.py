"""The shards of one step in parallel on one big machine: a Dask cluster of local processes, one per GPU.

Chosen with ``ZOO_SHARD_RUNNER=dask`` when a step has no deployment to hand its shards to. prefect-dask's
``DaskTaskRunner`` runs one task per shard on a ``SpecCluster`` of ``ZOO_DASK_WORKERS`` worker processes
(default: one per GPU, else 2), each with one thread: a worker scores one shard at a time. A process sees
only its own GPU (``CUDA_VISIBLE_DEVICES`` set per worker before CUDA starts there; with more workers
than GPUs they take turns round the GPUs), so ``device="auto"`` -> ``cuda`` is that GPU and no worker
allocates memory on another. Torch uses one CPU thread per worker (the workers share the cores).

Each task runs the shard flow itself, so the shard is a flow run of its own as on the ``gpu`` pool, named
after the shard and the worker that ran it (``shard 2 of 4 on dask worker 1 (pid 4242)``). The workers talk
to this process's Prefect API: the temporary server of the embedded default too, whose URL they are given
(else each would start a server of its own on the same SQLite file). They never open the catalog; their
plain results come back through Dask, and a shard that failed fails only its candidates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Nanny, Scheduler, SpecCluster
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner

from tasks.progress import StepProgress

Results = list[dict[str, Any]]
# per worker: one thread, and torch (OpenMP, MKL) on one core of those the workers share
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def worker_environments(workers: int, gpus: Sequence[str]) -> list[dict[str, str]]:
    """The environment of each of ``workers`` processes: the GPU it alone sees (``gpus``, the machine's GPUs
    as ``CUDA_VISIBLE_DEVICES`` names them, in turn; none on a machine without) and one CPU thread."""
    return [{**ONE_THREAD, **({"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if gpus else {})}
            for i in range(workers)]


def visible_gpus() -> list[str]:
    """This machine's GPUs as ``CUDA_VISIBLE_DEVICES`` names them: its own list when set, else ``0..n-1``."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if listed:
        return [g.strip() for g in listed.split(",") if g.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]


def local_task_runner(workers: int, api_url: str) -> DaskTaskRunner:
    """A ``DaskTaskRunner`` on a cluster of this machine: ``workers`` processes (``0``: one per GPU, or 2),
    each pinned to its GPU and pointed at the Prefect API ``api_url``."""
    gpus = visible_gpus()
    envs = worker_environments(workers or len(gpus) or 2, gpus)
    # memory_limit 0: a base model may take more than a worker's share of RAM; no nanny kills it for that
    specs = {i: {"cls": Nanny, "options": {"nthreads": 1, "memory_limit": 0, "host": "127.0.0.1",
                                           "env": {**env, "PREFECT_API_URL": api_url}}}
             for i, env in enumerate(envs)}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}}
    return DaskTaskRunner(cluster_class=SpecCluster, cluster_kwargs={
        "workers": specs, "scheduler": scheduler, "name": "zoo-shards"})


@task(name="shard on a dask worker", cache_policy=NO_CACHE)
def run_shard(shard_flow: Callable[..., Results], shard: dict[str, Any], name: str) -> Results:
    """Run one shard flow on the Dask worker that took this task, its flow run named after both."""
    import torch
    from distributed import get_worker

    torch.set_num_threads(1)  # OMP_NUM_THREADS may come too late if torch was imported before the worker's env
    ran_on = f"{name} on dask worker {get_worker().name} (pid {os.getpid()})"
    return shard_flow.with_options(flow_run_name=ran_on)(**shard)


def run_on_local_cluster(shard_flow: Callable[..., Results], shards: Sequence[dict[str, Any]], workers: int,
                         gather: Callable[[dict[str, Any], str], Results], progress: StepProgress) -> list[Results]:
    """The results of every shard (in shard order), the shards run in parallel on a local Dask cluster;
    ``gather(shard, reason)`` gives the results of a shard that failed (what it left in the store)."""
    from prefect.client.orchestration import get_client

    api_url = PREFECT_API_URL.value() or str(get_client(sync_client=True).api_url)  # the temporary server's
    out: list[Results] = [[] for _ in shards]
    with temporary_settings(updates={PREFECT_API_URL: api_url}), _quiet_and_contained(), \
            local_task_runner(workers, api_url) as runner:
        futures = {runner.submit(run_shard, parameters={
            "shard_flow": shard_flow, "shard": shard, "name": f"shard {i + 1} of {len(shards)}"}): i
            for i, shard in enumerate(shards)}
        for future in as_completed(list(futures)):
            index = futures[future]
            try:
                out[index] = future.result()
            except Exception as err:  # noqa: BLE001  (one shard's failure fails only its candidates)
                out[index] = gather(shards[index], f"{type(err).__name__}: {err}")
            progress.advance()
    return out


@contextmanager
def _quiet_and_contained() -> Iterator[None]:
    """While inside, Dask's INFO lines (the scheduler, each worker starting and stopping) stay out of the
    terminal: this process's from its logger, the workers' from the environment they inherit when spawned.
    Dask's nannies also set one-thread variables (OMP_NUM_THREADS...) in this process's environment to pass
    them on: that environment is given back on the way out, for this process to start others as it was."""
    logger, saved = logging.getLogger("distributed"), dict(os.environ)
    level = logger.level
    logger.setLevel(logging.WARNING)
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
    try:
        yield
    finally:
        logger.setLevel(level)
        os.environ.clear()
        os.environ.update(saved)
