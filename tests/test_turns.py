"""Two registrations racing for the champion alias make exactly one champion. Real ``prefect server`` on
loopback (its global concurrency limits), real SQLite MLflow."""

from __future__ import annotations

import contextvars
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from prefect_server import prefect_api

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> str:
    with prefect_api(tmp_path_factory.mktemp("turns")) as url:
        yield url


def test_two_registrations_racing_make_one_champion(api: str, tiny_zoo: Path, tmp_path: Path) -> None:
    """Two equally good candidates registered at the same moment: one becomes champion, the other finds
    it there and does not beat it (without the registry's turn both read "no champion" and both win)."""
    from mlflow import MlflowClient

    from tasks.registry import CandidateRecord, log_candidate, register_if_better, registered_model_name
    from tasks.turns import REGISTRY_LIMIT, turn

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
        return register_if_better(tracking_uri, name, run_id, (0.5, 1.0), serialised=partial(turn, REGISTRY_LIMIT))

    with ThreadPoolExecutor(len(runs)) as pool:  # each thread sees this test's Prefect API (a context variable)
        outcomes = [f.result() for f in [pool.submit(contextvars.copy_context().run, register, r) for r in runs]]
    assert sorted(o.registered for o in outcomes) == [False, True], [o.reason for o in outcomes]
    winner = next(o for o in outcomes if o.registered)
    assert [o.champion_version for o in outcomes] == [winner.version] * 2
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == [int(winner.version)]
