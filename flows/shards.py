"""Shards: a few candidates that share one loaded base model, each run as a flow run of its own.

``build_candidates`` and ``evaluate_candidates`` cut their work into shards (``ZOO_SHARD_SIZE`` candidates
each) and hand them to ``run_shards``: through a deployment on the ``gpu`` pool (``build-candidates-gpu``,
``evaluate-gpu`` in infra/prefect.yaml) every shard is submitted at once and every worker of the pool
takes some; the pool's and the deployment's concurrency limits decide how many run together. Without a
deployment (the embedded default) the same shard flows run one after the other in this process, or, with
``ZOO_SHARD_RUNNER=dask`` on a multi-GPU host, in parallel on a local Dask cluster (``flows.local_cluster``).

A shard flow gets plain inputs (candidate specs as JSON, the suite's text, the base revision, the
candidate store's URL) and never opens the catalog: it returns one plain result per candidate and leaves
each in the candidate store as soon as it has it. The orchestrating flow reads them back and alone writes
the catalog. A shard whose flow run crashed (its worker stopped), or whose heartbeat in the store stopped
changing for ``ZOO_SHARD_LEASE_S`` seconds (its worker vanished without a word, and no server would ever
mark its run crashed), is handed out again, at most ``ZOO_SHARD_RETRIES`` times; what the lost run had
finished is in the store and is not redone. A shard that failed for a real reason fails only its
candidates still without a result, with that reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect import flow

from tasks.base_models import base_model_folder
from tasks.candidates import build_shard, done
from tasks.evaluation import Suite, evaluate_shard
from tasks.progress import StepProgress
from zoo.candidates import CandidateSpec
from zoo.candidates.store import CandidateStore
from zoo.devices import resolve_device
from zoo.settings import load_settings

POLL_S = 2.0
LEASE_BEATS = 4  # heartbeats per lease: a shard is given up for lost after this many missed in a row
T = TypeVar("T")
Results = list[dict[str, Any]]


def shards_of(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` cut in order into runs of ``size`` (the last may be shorter)."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def candidate_store(url: str | None = None) -> CandidateStore:
    """The candidate store at ``url`` (default ``ZOO_CANDIDATE_STORE``), cached locally under ``ZOO_HOME``."""
    settings = load_settings()
    return CandidateStore(url or settings.candidate_store, settings.candidates_dir)


@flow(name="build-shard", log_prints=False)
def build_candidates_shard(base_model: str, base_revision: str, specs: list[dict[str, Any]],
                           datasets: dict[str, list[str]], store_url: str | None = None, device: str = "auto",
                           endpoint: str | None = None, heartbeat_s: float = 0) -> Results:
    """Build one shard of candidates (``CandidateSpec.to_json`` dicts) into the candidate store; returns a
    plain result per spec (``status``, ``candidate_key``, the catalog ``row`` or the ``reason``).
    ``heartbeat_s``: how often to show the orchestrator this run is alive (``0``: in process, no need)."""
    store = candidate_store(store_url)
    with heartbeat(store, heartbeat_s):
        base_dir = base_model_folder(endpoint, base_model, base_revision)
        return build_shard([CandidateSpec.from_json(s) for s in specs], base_dir, store, datasets,
                           resolve_device(device), endpoint)


@flow(name="evaluate-shard", log_prints=False)
def evaluate_candidates_shard(base_model: str, base_revision: str, candidates: list[dict[str, Any]],
                              suite_name: str, suite_text: str, max_examples: int | None = None,
                              store_url: str | None = None, device: str = "auto",
                              endpoint: str | None = None, heartbeat_s: float = 0) -> Results:
    """Score one shard of built candidates on the suite given as its JSONL text, with one base load; returns a
    plain result per candidate (``status``, ``eval_key``, the catalog rows or the ``reason``).
    ``heartbeat_s``: how often to show the orchestrator this run is alive (``0``: in process, no need)."""
    store = candidate_store(store_url)
    with heartbeat(store, heartbeat_s):
        suite = Suite.from_text(suite_name, suite_text, load_settings().suites_dir / "shards")
        base_dir = base_model_folder(endpoint, base_model, base_revision)
        return evaluate_shard(candidates, suite, base_dir, store, max_examples, resolve_device(device))


Gather = Callable[[dict[str, Any], str], Results]


def check_device_for_runner(device: str) -> None:
    """Under ``ZOO_SHARD_RUNNER=dask`` every worker sees only its own GPU, as ``cuda:0``: a device that names a GPU
    by index would mean another GPU on each worker (or none), so it is refused before any work starts."""
    if load_settings().shard_runner == "dask" and device.startswith("cuda:"):
        raise ValueError(f"device {device!r} names one GPU, but with ZOO_SHARD_RUNNER=dask each worker has a GPU of "
                         "its own (which it sees as cuda:0): use device 'auto' or 'cuda'")


def run_shards(shard_flow: Callable[..., Results], shards: Sequence[dict[str, Any]], deployment: str | None,
               store: CandidateStore, gather: Gather, what: str) -> Results:
    """Run every shard (the keyword arguments of ``shard_flow``) and return all their results in shard order.

    With ``deployment``: one flow run each, all submitted at once, then awaited together; a run that crashed,
    or whose heartbeat in ``store`` stopped for ``ZOO_SHARD_LEASE_S`` (its worker vanished), is submitted
    again, at most ``ZOO_SHARD_RETRIES`` times. Without: ``shard_flow`` runs each in this process, or with
    ``ZOO_SHARD_RUNNER=dask`` all in parallel on a Dask cluster of this machine (``flows.local_cluster``).
    ``gather(shard, reason)`` reads a shard's results from the candidate store once its run is over, a
    candidate without one failed for ``reason``. ``what``: the step, for the progress of its shards."""
    settings = load_settings()
    if deployment is None:
        for shard in shards:
            check_device_for_runner(shard.get("device", "auto"))
    key = f"{getattr(shard_flow, 'name', 'shard')}-progress"  # artifact keys: lowercase letters, digits, dashes
    progress = StepProgress(key, f"shards of {what} done", len(shards))
    if deployment is None and settings.shard_runner == "dask" and shards:
        try:
            from flows.local_cluster import run_on_local_cluster  # Dask only when chosen
        except ModuleNotFoundError as err:
            raise RuntimeError(f"ZOO_SHARD_RUNNER=dask needs the dask extra (pip install -e '.[dask]'): {err}") from err

        parallel = run_on_local_cluster(shard_flow, shards, settings.dask_workers, gather, progress)
        return [r for rows in parallel for r in rows]
    if deployment is None:
        out: Results = []
        for shard in shards:
            try:
                out += shard_flow(**shard)
            except Exception as err:  # noqa: BLE001  (one shard's failure fails only its candidates)
                out += gather(shard, f"{type(err).__name__}: {err}")
            progress.advance()
        return out
    remote = _await_remote(deployment, shards, store, gather, settings.shard_retries, settings.shard_lease_s,
                           progress)
    return [r for rows in remote for r in rows]


def gathered(store: CandidateStore, expected: Sequence[tuple[str, dict[str, Any]]], reason: str) -> Results:
    """The results named in ``expected`` (result name, the candidate's keys) as a shard left them in the store;
    one it left no success for failed with its own reason, or else ``reason``."""
    out = []
    for name, keys in expected:
        result = store.read_result(name)
        out.append(result if done(result) else
                   {**keys, "status": "failed", "reason": result["reason"] if result else reason})
    return out


def _await_remote(deployment: str, shards: Sequence[dict[str, Any]], store: CandidateStore, gather: Gather,
                  retries: int, lease_s: float, progress: StepProgress) -> list[Results]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Crashed

    def submit(index: int, attempt: int) -> Any:
        name = f"shard {index + 1} of {len(shards)}" + (f" (again, {attempt})" if attempt else "")
        parameters = {**shards[index], "heartbeat_s": lease_s / LEASE_BEATS}
        return run_deployment(deployment, parameters=parameters, timeout=0, flow_run_name=name).id

    pending = {submit(i, 0): (i, 0) for i in range(len(shards))}
    leases = Leases(store, lease_s)
    out: list[Results] = [[] for _ in shards]
    with get_client(sync_client=True) as client:
        while pending:
            time.sleep(POLL_S)
            for run_id, (index, attempt) in list(pending.items()):
                run = client.read_flow_run(run_id)
                state = run.state
                if state is not None and state.is_running() and leases.lost(str(run_id)):
                    state = Crashed(message=f"no heartbeat for {lease_s:.0f} s: its worker is gone")
                    client.set_flow_run_state(run_id, state, force=True)
                if state is None or not state.is_final():
                    continue
                del pending[run_id]
                if state.is_crashed() and attempt < retries:
                    pending[submit(index, attempt + 1)] = (index, attempt + 1)
                    continue
                reason = f"flow run {run.name} of {deployment} ended {state.name}: {state.message or '-'}"
                out[index] = gather(shards[index], reason)
                progress.advance()
    return out


class Leases:
    """Whether a running shard still beats: its heartbeat in the store must change within ``lease_s`` seconds
    of this process's clock (no clock is compared with another machine's)."""

    def __init__(self, store: CandidateStore, lease_s: float) -> None:
        self.store, self.lease_s = store, lease_s
        self.seen: dict[str, tuple[Any, float]] = {}  # run id -> (last beat read, when it was first read)

    def lost(self, run_id: str) -> bool:
        beat = self.store.read_result(_lease_name(run_id))
        now = time.monotonic()
        last = self.seen.get(run_id)
        if last is None or last[0] != beat:
            self.seen[run_id] = (beat, now)
            return False
        return now - last[1] > self.lease_s


@contextmanager
def heartbeat(store: CandidateStore, every_s: float) -> Iterator[None]:
    """While inside, this flow run's heartbeat in the store changes every ``every_s`` seconds (``0``: none), so
    that the orchestrator tells a shard at work from one whose worker vanished without a word."""
    from prefect.runtime import flow_run

    if not every_s:
        yield
        return
    stop, name = threading.Event(), _lease_name(str(flow_run.id))

    def beat() -> None:
        count = 0
        while True:
            store.write_result(name, {"beat": count})
            count += 1
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=beat, name="shard-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _lease_name(run_id: str) -> str:
    return f"lease-{run_id}"
