"""The whole pipeline on the tiny demo zoo: real local hub, real Prefect API, real DuckDB file, real SQLite
MLflow store. Crawl -> fingerprint -> cluster -> build -> evaluate -> register, run several times with
different candidate sets to move (or not move) the champion, re-run to check nothing is recomputed, and
killed mid-way to check a re-run completes without duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from catalog import Catalog

BASE_ONLY = {"experts": False, "uniform": False, "libraries_over_all": False, "merge_methods": [], "routers": []}
WORSE = {"experts": False, "uniform": True, "libraries_over_all": False, "merge_methods": [], "routers": []}
FULL = {"experts": False, "merge_methods": ["linear"], "routers": ["arrow", "phatgoose"],
        "router_settings": {"phatgoose": {"steps": 5}}}
TABLES = ("adapter_fingerprints", "clusterings", "candidates", "evaluations", "evaluation_tasks", "registrations")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_zoo: Path, tiny_hub: str) -> dict:
    """Catalog, MLflow store and a trimmed suite (3 held-in + 3 held-out tasks) in a fresh folder."""
    from flows.cli.demo_zoo import demo_zoo_suite
    from zoo.eval import write_suite

    root = tmp_path_factory.mktemp("recycle")
    examples = demo_zoo_suite(tiny_zoo)
    keep = {s: list(dict.fromkeys(e.task for e in examples if e.split == s))[:3] for s in ("held-in", "held-out")}
    suite = write_suite(root / "demo-mini.jsonl", [e for e in examples if e.task in keep[e.split]])
    base_model = json.loads((tiny_zoo / "zoo.json").read_text())["base_model"]
    return {"catalog": str(root / "catalog.duckdb"), "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "suite": str(suite), "endpoint": tiny_hub, "base_model": base_model, "root": root}


def _recycle(setup: dict, candidates: dict, max_examples: int = 4) -> dict:
    from flows.recycle import recycle

    result = recycle(suite=setup["suite"], endpoint=setup["endpoint"], candidates=candidates, k=2,
                     max_examples=max_examples, catalog_path=setup["catalog"], tracking_uri=setup["tracking_uri"])
    return result[setup["base_model"]]


def _counts(setup: dict) -> dict[str, int]:
    with Catalog.open(setup["catalog"]) as cat:
        return {t: cat.query(f"SELECT count(*) AS n FROM {t}").column("n")[0].as_py() for t in TABLES}


def _runs(setup: dict) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=setup["tracking_uri"])
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def test_champion_moves_only_to_a_better_candidate_and_loads(setup: dict) -> None:
    first = _recycle(setup, BASE_ONLY)
    assert first["registered"] and first["version"] == "1" and first["best"] == "base"

    better = _recycle(setup, FULL)
    assert better["registered"], better["reason"]
    assert better["version"] == "2" and better["best"] != "base"

    worse = _recycle(setup, WORSE)
    assert not worse["registered"] and worse["champion_version"] == "2", worse["reason"]

    with Catalog.open(setup["catalog"]) as cat:
        champion = cat.query("SELECT * FROM champions").to_pylist()
        board = cat.query("SELECT candidate, kind, held_out_em FROM leaderboard ORDER BY rank").to_pylist()
        kinds = {r["kind"] for r in board}
    assert [c["version"] for c in champion] == [2] and champion[0]["candidate"] == better["best"]
    assert {"base", "merge", "library"} <= kinds

    import mlflow

    from tasks.registry import use_tracking_uri

    with use_tracking_uri(setup["tracking_uri"]):
        model = mlflow.pyfunc.load_model(f"models:/{better['model_name']}@champion")
        prompt = json.loads(Path(setup["suite"]).read_text().splitlines()[0])["prompt"]
        out = model.predict([prompt])
    assert isinstance(out, list) and len(out) == 1 and isinstance(out[0], str)


def test_the_temporary_prefect_server_runs_no_automations() -> None:
    """The trigger service of Prefect's temporary server wrote its SQLite file every few seconds, for
    automations nobody defined, and failed on it ("database is locked") while a recycle ran."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        services = client.request("GET", "/admin/settings").json()["server"]["services"]
    assert not services["triggers"]["enabled"] and not services["event_logger"]["enabled"]
    assert services["task_run_recorder"]["enabled"]  # what the pipeline needs stays on


def test_a_second_run_recomputes_nothing_and_registers_nothing(setup: dict) -> None:
    _recycle(setup, FULL)  # no-op when the test above ran; makes this test stand alone otherwise
    before, runs = _counts(setup), len(_runs(setup))
    again = _recycle(setup, FULL)
    assert not again["registered"] and again["reason"].startswith("already registered")
    assert _counts(setup) == before
    assert len(_runs(setup)) == runs


def test_a_flow_killed_mid_way_completes_on_rerun_without_duplicates(setup: dict) -> None:
    """Kill a recycle run (new evaluation settings, so there is work) once a few candidates are scored."""
    script = textwrap.dedent(f"""
        from flows.recycle import recycle
        recycle(suite={setup['suite']!r}, endpoint={setup['endpoint']!r}, candidates={FULL!r}, k=2,
                max_examples=3, catalog_path={setup['catalog']!r}, tracking_uri={setup['tracking_uri']!r})
    """)
    # task runs are read from the log; one candidate per shard, so each scored candidate completes a task run
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_LOGGING_LEVEL": "INFO", "ZOO_SHARD_SIZE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    scored, deadline, tracebacks = 0, time.monotonic() + 240, []
    try:
        for line in proc.stdout:
            if "Traceback" in line:  # e.g. the temporary Prefect server failing on its SQLite file
                tracebacks.append(line)
            if "Task run 'evaluate " in line and "Completed" in line:
                scored += 1
                if scored == 3:
                    break
            assert time.monotonic() < deadline, "the run never scored three candidates"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert scored == 3
    assert not tracebacks

    result = _recycle(setup, FULL, max_examples=3)
    with Catalog.open(setup["catalog"]) as cat:
        keys = cat.query("SELECT eval_key FROM evaluations WHERE settings->>'max_examples' = '3'").column("eval_key")
        tasks = cat.query("SELECT eval_key, count(*) AS n FROM evaluation_tasks GROUP BY eval_key HAVING n <> 6")
        planned = cat.query("SELECT count(*) AS n FROM evaluations WHERE settings->>'max_examples' = '4'")
    # FULL holds every candidate of the other sets, so each set of settings scored the same candidates
    assert len(keys) == len(set(keys.to_pylist())) == planned.column("n")[0].as_py() > 3
    assert tasks.num_rows == 0  # every evaluation has all 6 tasks, once
    finished = [r for r in _runs(setup) if r.data.tags.get("zoo.eval_key") in set(keys.to_pylist())
                and r.info.status == "FINISHED"]
    assert sorted(r.data.tags["zoo.eval_key"] for r in finished) == sorted(keys.to_pylist())
    assert result["best_eval_key"] in set(keys.to_pylist())


def test_screening_evaluates_only_the_best_in_full_and_lists_the_rest(setup: dict) -> None:
    """Successive halving: every candidate's held-in NLL on four examples per task, then the full pass for the
    best two plus the reference rows; the others appear on the leaderboard as screened out."""
    from flows.recycle import recycle
    from tasks.evaluation import Suite
    from tasks.leaderboard import leaderboard_rows

    # A suite of its own (the same examples, another order: another content hash): the tests above evaluated
    # every candidate in full on the module's suite, and a candidate evaluated in full is not screened out.
    lines = Path(setup["suite"]).read_text().splitlines()
    suite = setup["root"] / "demo-mini-screened.jsonl"
    suite.write_text("\n".join(reversed(lines)) + "\n")

    def run() -> dict:
        return recycle(suite=str(suite), endpoint=setup["endpoint"], candidates=FULL, k=2, max_examples=2,
                       screen=2, catalog_path=setup["catalog"], tracking_uri=setup["tracking_uri"])

    run()
    with Catalog.open(setup["catalog"]) as cat:
        screened = cat.query("SELECT c.name, c.kind, s.held_in_nll, s.examples FROM screenings s "
                             "JOIN candidates c USING (candidate_key)").to_pylist()
        full = set(cat.query("SELECT c.name FROM evaluations e JOIN candidates c USING (candidate_key) "
                             "WHERE e.suite_name = 'demo-mini-screened'").column("name").to_pylist())
    assert len(screened) > 4 and all(s["examples"] == 3 * 4 and s["held_in_nll"] > 0 for s in screened)
    ordered = sorted(screened, key=lambda s: (s["held_in_nll"], s["name"]))
    best_of_kind = {s["kind"]: s["name"] for s in reversed(ordered)}
    assert full == {s["name"] for s in ordered[:2]} | {"base", "uniform-merge"} | set(best_of_kind.values())
    assert len(full) < len(screened)

    board = leaderboard_rows(Path(setup["catalog"]), setup["base_model"], Suite.of(suite).hash)
    out = {r["candidate"] for r in board if r.get("screened_out")}
    assert out == {s["name"] for s in screened} - full
    assert all(r["rank"] is None and r["note"].startswith("screened out") for r in board if r.get("screened_out"))

    before = _counts(setup)
    with Catalog.open(setup["catalog"]) as cat:
        screenings = cat.query("SELECT count(*) AS n FROM screenings").column("n")[0].as_py()
    run()
    with Catalog.open(setup["catalog"]) as cat:
        assert cat.query("SELECT count(*) AS n FROM screenings").column("n")[0].as_py() == screenings
    assert _counts(setup) == before


def test_a_candidate_that_fails_fails_alone_and_is_retried_later(setup: dict) -> None:
    """A built candidate whose folder is gone from the candidate store fails in its shard with the reason
    recorded; the rest of the shard and the other shards are scored. Once the folder is back, a re-run
    scores only it: nothing is scored twice."""
    from flows.evaluate import evaluate_candidates
    from zoo.settings import load_settings

    _recycle(setup, FULL)  # no-op when the tests above ran
    with Catalog.open(setup["catalog"]) as cat:
        built = cat.query("SELECT candidate_key, artifact FROM candidates WHERE artifact IS NOT NULL "
                          "ORDER BY candidate_key").to_pylist()
    keys = [c["candidate_key"] for c in built]
    victim = built[0]
    folder = load_settings().candidates_dir / victim["artifact"]
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    try:
        scored = evaluate_candidates(setup["base_model"], setup["suite"], candidate_keys=keys, max_examples=1,
                                     endpoint=setup["endpoint"], catalog_path=setup["catalog"])
    finally:
        aside.rename(folder)
    assert len(scored) == len(keys) - 1
    with Catalog.open(setup["catalog"]) as cat:
        failures = cat.query("SELECT candidate_key, step, reason FROM candidate_failures").to_pylist()
        first = cat.query("SELECT eval_key, evaluated_at FROM evaluations WHERE eval_key IN (SELECT unnest(?))",
                          [scored]).to_pylist()[0]
    assert [(f["candidate_key"], f["step"]) for f in failures] == [(victim["candidate_key"], "evaluate")]
    assert failures[0]["reason"].split(":")[0].endswith(("Error", "Exception"))  # the exception, named
    again = evaluate_candidates(setup["base_model"], setup["suite"], candidate_keys=keys, max_examples=1,
                                endpoint=setup["endpoint"], catalog_path=setup["catalog"])
    assert len(again) == len(keys) and set(scored) < set(again)
    with Catalog.open(setup["catalog"]) as cat:
        rows = cat.query("SELECT eval_key, evaluated_at FROM evaluations WHERE eval_key IN (SELECT unnest(?))",
                         [again]).to_pylist()
    assert len(rows) == len(keys)
    assert {r["eval_key"]: r["evaluated_at"] for r in rows}[first["eval_key"]] == first["evaluated_at"]
