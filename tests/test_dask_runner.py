"""``ZOO_SHARD_RUNNER=dask``: the shards of the evaluation step in parallel on a local Dask cluster.

The tiny zoo's candidates are built once (in process), then evaluated twice from the same start (a copy of
the catalog and of the candidate store): once with two local Dask workers and one candidate per shard, once
inline. Real Prefect (the temporary API server, which the workers reach too), real DuckDB, real Dask.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from prefect import flow

from catalog import Catalog

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# base, uniform merge and a linear merge per cluster (k=2): 4 candidates, 4 shards of one
CANDIDATES = {"experts": False, "libraries_over_all": False, "merge_methods": ["linear"], "routers": []}
MAX_EXAMPLES = 2
RAN_ON = re.compile(r"shard (\d) of 4 on dask worker (\d+) \(pid (\d+)\)")


def test_dask_workers_score_each_shard_once_as_inline_would(tiny_zoo: Path, tiny_hub: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from flows.build_candidates import build_candidates
    from flows.cli.demo_zoo import demo_zoo_suite
    from flows.cluster import cluster_adapters
    from flows.crawl import crawl_hub
    from flows.evaluate import evaluate_candidates
    from flows.fingerprint import fingerprint
    from zoo.eval import write_suite

    base_model = json.loads((tiny_zoo / "zoo.json").read_text())["base_model"]
    suite = str(write_suite(tmp_path / "suite.jsonl", demo_zoo_suite(tiny_zoo, max_per_task=MAX_EXAMPLES)))
    dask, inline = tmp_path / "dask", tmp_path / "inline"
    dask.mkdir()
    catalog = str(dask / "catalog.duckdb")
    monkeypatch.setenv("ZOO_CANDIDATE_STORE", str(dask / "store"))
    crawl_hub(endpoint=tiny_hub, base_models=[base_model], catalog_path=catalog)
    fingerprint(base_model, endpoint=tiny_hub, catalog_path=catalog)
    clustering = cluster_adapters(base_model, k=2, catalog_path=catalog)
    built = build_candidates(base_model, clustering, options=CANDIDATES, endpoint=tiny_hub, catalog_path=catalog)
    assert len(built) == 4
    shutil.copytree(dask, inline)  # the same start for the inline run, nothing scored yet

    monkeypatch.setenv("ZOO_SHARD_RUNNER", "dask")
    monkeypatch.setenv("ZOO_DASK_WORKERS", "2")
    monkeypatch.setenv("ZOO_SHARD_SIZE", "1")
    scored = evaluate_candidates(base_model, suite, candidate_keys=built, max_examples=MAX_EXAMPLES,
                                 endpoint=tiny_hub, catalog_path=catalog)
    assert len(scored) == 4
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="on dask worker")))
    ran = [RAN_ON.fullmatch(r.name) for r in runs]
    assert all(ran) and sorted(m[1] for m in ran) == ["1", "2", "3", "4"], [r.name for r in runs]
    assert {r.state_name for r in runs} == {"Completed"}
    assert len({m[2] for m in ran}) == 2, "both workers took shards"
    assert len({m[3] for m in ran}) == 2 and str(os.getpid()) not in {m[3] for m in ran}  # two other processes

    monkeypatch.setenv("ZOO_SHARD_RUNNER", "inline")
    monkeypatch.setenv("ZOO_CANDIDATE_STORE", str(inline / "store"))
    reference = evaluate_candidates(base_model, suite, candidate_keys=built, max_examples=MAX_EXAMPLES,
                                    endpoint=tiny_hub, catalog_path=str(inline / "catalog.duckdb"))
    assert sorted(reference) == sorted(scored)
    by_dask, by_inline = _metrics(catalog), _metrics(str(inline / "catalog.duckdb"))
    assert {k for k, _ in by_dask} == set(built)  # every candidate scored, each once
    assert by_dask.keys() == by_inline.keys()
    for key, value in by_dask.items():  # one torch thread against several: sums in another order
        assert value == pytest.approx(by_inline[key], rel=1e-4, abs=1e-6), key


def _metrics(catalog: str) -> dict[tuple[str, str], float | None]:
    """Every metric of every evaluation, by (candidate, task/metric); fails if a candidate has two evaluations."""
    with Catalog.open(catalog, read_only=True) as cat:
        counts = cat.query("SELECT candidate_key, count(*) AS n FROM evaluations GROUP BY ALL").to_pylist()
        rows = cat.query("SELECT e.candidate_key, m.task, m.metric, m.value FROM evaluations e "
                         "JOIN evaluation_metrics m USING (eval_key)").to_pylist()
    assert {c["n"] for c in counts} == {1}
    return {(r["candidate_key"], f"{r['task']}/{r['metric']}"): r["value"] for r in rows}


def test_each_worker_sees_only_its_own_gpu_and_one_thread() -> None:
    from flows.local_cluster import worker_environments

    assert worker_environments(3, ["2", "5"]) == [
        {"CUDA_VISIBLE_DEVICES": "2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        {"CUDA_VISIBLE_DEVICES": "5", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        {"CUDA_VISIBLE_DEVICES": "2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},  # more workers: in turn
    ]
    assert worker_environments(2, []) == [{"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}] * 2  # no GPU


@flow(name="probe-shard")
def _probe_shard(index: int) -> list[dict]:
    """A shard that reports where it ran, and fails for a real reason when it is shard 3."""
    import torch

    if index == 3:
        raise ValueError("a bad adapter")
    return [{"index": index, "pid": os.getpid(), "torch_threads": torch.get_num_threads(),
             "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}]


@flow(name="probe-orchestrator")
def _orchestrator() -> tuple[list[list[dict]], int]:
    """What ``run_shards`` does with the ``dask`` runner, in the flow that orchestrates: 4 shards on 2 workers."""
    from flows.local_cluster import run_on_local_cluster
    from tasks.progress import StepProgress

    progress = StepProgress("probe-progress", "probe shards", 4)
    out = run_on_local_cluster(_probe_shard, [{"index": i} for i in range(4)], 2,
                               lambda shard, reason: [{"index": shard["index"], "failed": reason}], progress)
    return out, progress.done


def test_a_failed_shard_fails_alone_and_workers_use_one_thread() -> None:
    """Straight through ``run_on_local_cluster``: results come back in shard order as plain dicts, the failed
    shard's candidates take the ``gather`` path with its reason, and this process's environment is as it was."""
    from flows.local_cluster import visible_gpus

    before = dict(os.environ)
    out, done = _orchestrator()
    assert [rows[0]["index"] for rows in out] == [0, 1, 2, 3] and done == 4
    assert out[3] == [{"index": 3, "failed": "ValueError: a bad adapter"}]
    ok = [rows[0] for rows in out[:3]]
    assert {r["torch_threads"] for r in ok} == {1}
    gpus = visible_gpus()
    assert {r["gpu"] for r in ok} <= (set(gpus) if gpus else {None})  # one GPU each, or none on a CPU machine
    assert os.getpid() not in {r["pid"] for r in ok}
    assert dict(os.environ) == before  # Dask's nannies leave OMP_NUM_THREADS and co. in it otherwise


def test_a_shard_pinned_to_a_gpu_index_is_refused_before_a_cluster_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.shards import run_shards

    monkeypatch.setenv("ZOO_SHARD_RUNNER", "dask")
    started = []
    with pytest.raises(ValueError, match="each worker has a GPU of its own"):
        run_shards(lambda **shard: started.append(shard) or [], [{"device": "cuda:1"}], None, None,
                   lambda shard, reason: [], "probe")
    assert started == []
