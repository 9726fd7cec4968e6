"""Writers wait their turn instead of failing: a crawl and a recycle writing one DuckDB catalog at the same
moment both complete (the catalog's OS file lock), and two registrations racing for the champion alias
make exactly one champion (the registry's turn and compare-and-set). Real ``prefect server`` on loopback
(both processes report to it), real DuckDB file, real SQLite MLflow."""

from __future__ import annotations

import contextvars
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from prefect_server import prefect_api

from catalog import Catalog

pytestmark = pytest.mark.slow

BASE_ONLY = {"experts": False, "uniform": False, "libraries_over_all": False, "merge_methods": [], "routers": []}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> str:
    with prefect_api(tmp_path_factory.mktemp("writers")) as url:
        yield url


def test_a_writer_waits_for_another_process_writing_however_long_and_not_for_a_dead_one(tmp_path: Path) -> None:
    """A second writer waits for the first to close the catalog, past any connect retry (here 0.5 s); a writer
    killed with SIGKILL leaves nothing to wait for (the OS dropped its lock: no lease to reclaim)."""
    path = tmp_path / "catalog.duckdb"
    Catalog.open(path).close()
    hold = textwrap.dedent(f"""
        import sys, time
        from catalog import Catalog
        with Catalog.open({str(path)!r}) as cat:
            cat.execute("CREATE TABLE IF NOT EXISTS held (n INTEGER)")
            cat.execute("INSERT INTO held VALUES (1)")
            print("open", flush=True)
            time.sleep(float(sys.argv[1]))
    """)

    def holder(seconds: float) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", hold, str(seconds)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "open"
        return proc

    first = holder(3.0)
    started = time.monotonic()
    with Catalog.open(path, wait_s=0.5) as cat:
        waited = time.monotonic() - started
        assert cat.query("SELECT count(*) AS n FROM held").column("n")[0].as_py() == 1
    assert first.wait(timeout=30) == 0 and waited > 1.0

    dead = holder(600.0)
    dead.send_signal(signal.SIGKILL)
    dead.wait(timeout=30)
    started = time.monotonic()
    Catalog.open(path, wait_s=0.5).close()
    assert time.monotonic() - started < 5.0


def test_a_crawl_and_a_recycle_started_together_both_complete(api: str, tiny_zoo: Path, tiny_hub: str,
                                                               tmp_path: Path) -> None:
    """The crawl (another process, holding the catalog open for all of its run) and the recycle (this
    process, crawling first too) queue on the catalog's lock; without it one fails on DuckDB's lock."""
    from flows.cli.demo_zoo import demo_zoo_suite
    from flows.recycle import recycle
    from zoo.eval import write_suite

    examples = demo_zoo_suite(tiny_zoo, max_per_task=2)
    tasks = {split: next(e.task for e in examples if e.split == split) for split in ("held-in", "held-out")}
    suite = write_suite(tmp_path / "suite.jsonl", [e for e in examples if e.task in tasks.values()])
    catalog = str(tmp_path / "catalog.duckdb")
    script = textwrap.dedent(f"""
        from flows.crawl import crawl_hub
        crawl_hub(endpoint={tiny_hub!r}, verify_weights=True, catalog_path={catalog!r})
    """)
    crawl = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env={**os.environ, "PREFECT_API_URL": api},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        outcome = recycle(suite=str(suite), endpoint=tiny_hub, candidates=BASE_ONLY, max_examples=2,
                          catalog_path=catalog, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        output, _ = crawl.communicate(timeout=600)
    finally:
        crawl.kill()
    assert crawl.returncode == 0, output[-4000:]
    base_model = json.loads((tiny_zoo / "zoo.json").read_text())["base_model"]
    assert outcome[base_model]["registered"]
    with Catalog.open(catalog, read_only=True) as cat:
        runs = cat.query("SELECT status FROM crawl_runs").column("status").to_pylist()
    assert runs == ["completed", "completed"]


def test_two_registrations_racing_make_one_champion(api: str, tiny_zoo: Path, tmp_path: Path) -> None:
    """Two equally good candidates registered at the same moment: one becomes champion, the other finds
    it there and does not beat it (without the registry's turn both read "no champion" and both win)."""
    from mlflow import MlflowClient

    from tasks.registry import CandidateRecord, log_candidate, register_if_better, registered_model_name
    from tasks.turns import registry_turn

    meta = json.loads((tiny_zoo / "zoo.json").read_text())
    base_model, experts = meta["base_model"], [e["repo_id"] for e in meta["experts"][:2]]
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    name = registered_model_name(base_model, "race")
    runs = [log_candidate(tracking_uri, base_model, CandidateRecord(
        key=f"cand-{i}", eval_key=f"race-{i}", name=f"expert-{i}", kind="expert", base_model_dir=tiny_zoo / base_model,
        suite_name="race", suite_hash="suite0", members=[e], member_shas={e: "a" * 40}, artifact_dir=tiny_zoo / e))
        for i, e in enumerate(experts)]
    start = threading.Barrier(len(runs))

    def register(run_id: str):
        start.wait()
        return register_if_better(tracking_uri, name, run_id, (0.5, 1.0), serialised=partial(registry_turn, name))

    with ThreadPoolExecutor(len(runs)) as pool:  # each thread sees this test's Prefect API (a context variable)
        outcomes = [f.result() for f in [pool.submit(contextvars.copy_context().run, register, r) for r in runs]]
    assert sorted(o.registered for o in outcomes) == [False, True], [o.reason for o in outcomes]
    winner = next(o for o in outcomes if o.registered)
    assert [o.champion_version for o in outcomes] == [winner.version] * 2
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [int(winner.version)]
