"""The ``crawl_hub`` Prefect flow end to end: the tiny demo zoo, served by the local hub as strictly as
huggingface.co (``Realism``), crawled into the catalog on a real Prefect API, checked against the zoo's
manifest (``zoo.json``).

One Prefect server (scheduler included) is started for the module. Every comparison of catalogs is
on content: every table in key order, except ``crawl_runs`` (the only per-run facts) and ``repo_stats``
(downloads and likes, which move daily).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import prefect_server
import pyarrow as pa
import pytest

from catalog import Catalog, crawl_records
from flows.cli.crawl import DEPLOYMENTS_FILE, deployments_from_yaml
from flows.crawl import crawl_hub
from zoo.localhub import Faults, HubURL, Quota, Realism, serve_in_thread

TOKEN = "hf_SECRETtokenThatMustNeverLeak"
BATCH = 8  # small batches, so that a crawl can crash between two commits
LISTINGS = 2  # a crawl of every adapter lists the peft-tagged repos and the lora-tagged ones


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server for this module: flows report to it and its scheduler creates runs."""
    with prefect_server.prefect_api(tmp_path_factory.mktemp("prefect-server"), scheduler=True) as api_url:
        yield api_url


# Each kind of broken repo of the demo zoo, and how the catalog records it (status, words of the reason).
EXPECTED_REFUSALS = {
    "pickle_only": ("unsupported", "only pickled weights (adapter_model.bin)"),
    "nan_weights": ("invalid", "NaN"),  # needs the data: only a --verify-weights crawl sees it
    "missing_config": ("invalid", "adapter_config.json missing"),
    "malformed_config": ("invalid", "adapter_config.json is not valid JSON"),
    "shape_mismatch": ("invalid", "does not fit base model"),
    "dora": ("unsupported", "DoRA"),
    "path_traversal": ("invalid", "unsafe file name"),
}


@pytest.fixture(scope="module")
def manifest(tiny_zoo: Path) -> dict:
    manifest = json.loads((tiny_zoo / "zoo.json").read_text())
    base_name = manifest["base_model"].split("/")[-1]
    for entry in manifest["broken"]:  # some ids are written as templates of the base model's name
        entry["repo_id"] = entry["repo_id"].format(base=base_name)
    return manifest


@pytest.fixture(scope="module")
def hub(tiny_zoo: Path) -> Iterator[HubURL]:
    """The tiny zoo on a realistic hub with the real quotas (anonymous, and free accounts for tokens)."""
    with serve_in_thread(tiny_zoo, realism=Realism(anonymous=Quota(), authenticated=Quota(1000, 5000))) as url:
        yield url


@dataclass(frozen=True)
class FirstCrawl:
    catalog: Path
    counts: dict[str, int]
    flow_run_id: UUID


@pytest.fixture(scope="module")
def first_crawl(prefect_api: str, hub: HubURL, tmp_path_factory: pytest.TempPathFactory) -> FirstCrawl:
    """One clean crawl of the hub (reported to ``prefect_api``), with a token in the environment as a
    private hub needs."""
    catalog = tmp_path_factory.mktemp("first") / "catalog.duckdb"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_TOKEN", TOKEN)
        state = crawl_hub(endpoint=hub, catalog_path=str(catalog), batch_size=BATCH, return_state=True)
    prefect_server.drain_prefect_workers()
    return FirstCrawl(catalog, state.result(), state.state_details.flow_run_id)


def _crawl(url: str, catalog: Path, **options: object) -> dict[str, int]:
    return crawl_hub(endpoint=url, catalog_path=str(catalog), batch_size=BATCH, **options)


PER_RUN_TABLES = ("crawl_runs", "repo_stats")


def content(catalog: Path) -> dict[str, pa.Table]:
    with Catalog.open(catalog, read_only=True) as cat:
        return {table: cat.read_table(table) for table in cat.tables() if table not in PER_RUN_TABLES}


def runs(catalog: Path) -> list[dict]:
    with Catalog.open(catalog, read_only=True) as cat:
        return cat.query("SELECT * FROM crawl_runs ORDER BY started_at").to_pylist()


def test_every_good_adapter_lands_with_its_fields(first_crawl: FirstCrawl, manifest: dict) -> None:
    counts = first_crawl.counts
    assert counts["seen"] == counts["new"] == len(manifest["experts"]) + len(manifest["broken"])
    assert counts["failed"] == 0 and counts["http_requests"] <= 3 * counts["seen"]
    with Catalog.open(first_crawl.catalog, read_only=True) as cat:
        adapters = {r["repo_id"]: r for r in cat.query("SELECT * FROM adapter_overview").to_pylist()}
        details = {r["repo_id"]: r for r in cat.read_table("adapters").to_pylist()}
        modules = cat.read_table("adapter_modules").to_pylist()
    for expert in manifest["experts"]:
        row, detail = adapters[expert["repo_id"]], details[expert["repo_id"]]
        assert (row["status"], row["base_check"], row["base_model"]) == ("ok", "fits", manifest["base_model"])
        assert (row["r"], row["lora_alpha"]) == (expert["rank"], expert["alpha"])
        assert row["use_rslora"] == expert["use_rslora"]
        assert (row["license"], row["datasets"]) == (expert["license"], [expert["dataset"]])
        targets = expert["target_modules"]
        if isinstance(targets, str):
            assert row["target_regex"] == targets
        else:
            assert row["target_modules"] == sorted(targets)
        assert json.loads(detail["rank_pattern"]) == expert["rank_pattern"]
        own = [m for m in modules if m["repo_id"] == expert["repo_id"]]
        assert sorted({m["module"].rsplit(".", 1)[-1] for m in own}) == sorted(expert["modules"])
        for m in own:
            kind = m["module"].rsplit(".", 1)[-1]
            rank = expert["rank_pattern"].get(kind, expert["rank"])
            alpha = expert["alpha_pattern"].get(kind, expert["alpha"])
            assert m["rank"] == rank
            assert m["scale"] == pytest.approx(alpha / (rank**0.5 if expert["use_rslora"] else rank))


def test_every_broken_repo_is_recorded_with_its_reason(first_crawl: FirstCrawl, manifest: dict) -> None:
    with Catalog.open(first_crawl.catalog, read_only=True) as cat:
        broken = {r["repo_id"]: r for r in cat.query("SELECT * FROM broken_adapters").to_pylist()}
    for entry in manifest["broken"]:
        status, words = EXPECTED_REFUSALS[entry["kind"]]
        if entry["kind"] == "nan_weights":
            assert entry["repo_id"] not in broken  # its header is fine: NaN needs --verify-weights
            continue
        assert broken[entry["repo_id"]]["status"] == status, entry
        assert words in broken[entry["repo_id"]]["reason"], entry
    assert len(broken) == len(manifest["broken"]) - 1


def test_verify_weights_rereads_unverified_adapters_and_finds_nan(
    first_crawl: FirstCrawl, hub: HubURL, manifest: dict, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.duckdb"
    shutil.copy(first_crawl.catalog, catalog)
    counts = _crawl(hub, catalog, verify_weights=True)
    assert counts["updated"] == len(manifest["experts"]) + 1  # every ok adapter, the NaN one included
    nan_repo = next(e["repo_id"] for e in manifest["broken"] if e["kind"] == "nan_weights")
    with Catalog.open(catalog, read_only=True) as cat:
        rows = {r["repo_id"]: r for r in cat.read_table("adapters").to_pylist()}
    assert rows[nan_repo]["status"] == "invalid" and "NaN" in rows[nan_repo]["reason"]
    assert all(rows[e["repo_id"]]["weights_verified"] for e in manifest["experts"])
    assert _crawl(hub, catalog, verify_weights=True)["updated"] == 0


def test_a_recrawl_of_an_unchanged_hub_changes_no_content_and_costs_one_request_per_listing(
    first_crawl: FirstCrawl, hub: HubURL, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.duckdb"
    shutil.copy(first_crawl.catalog, catalog)
    hub.requests.reset()
    counts = _crawl(hub, catalog)
    assert hub.requests.by_kind() == {"list": LISTINGS}
    assert (counts["unchanged"], counts["new"], counts["updated"]) == (counts["seen"], 0, 0)
    assert counts["http_requests"] == LISTINGS
    assert content(catalog) == content(first_crawl.catalog)
    assert [r["status"] for r in runs(catalog)] == ["completed", "completed"]


@pytest.mark.usefixtures("prefect_api")
def test_moving_downloads_and_likes_update_only_the_stats(tiny_zoo: Path, manifest: dict, tmp_path: Path) -> None:
    root = tmp_path / "hub"
    shutil.copytree(tiny_zoo, root)
    catalog = tmp_path / "catalog.duckdb"
    popular = manifest["experts"][0]["repo_id"]
    with serve_in_thread(root, realism=Realism()) as url:
        _crawl(url, catalog)
        before = content(catalog)
        stats = root / popular / ".hub.json"
        stats.write_text(json.dumps({**json.loads(stats.read_text()), "downloads": 123_456, "likes": 789}))
        url.requests.reset()
        counts = _crawl(url, catalog)
    assert (counts["updated"], url.requests.by_kind()) == (0, {"list": LISTINGS})
    assert content(catalog) == before  # hub_repos and adapters untouched: no rewrite of a moving counter
    with Catalog.open(catalog, read_only=True) as cat:
        shown = cat.query("SELECT downloads, likes FROM adapter_overview WHERE repo_id = ?", [popular]).to_pylist()
    assert shown == [{"downloads": 123_456, "likes": 789}]


def test_429_bursts_5xx_and_truncated_bodies_lose_nothing(first_crawl: FirstCrawl, hub: HubURL, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.duckdb"
    storm = Faults(rate_limit=2, error_rate=0.5, truncate_rate=0.05, seed=11)
    steady = Faults(error_rate=0.05, truncate_rate=0.05, seed=11)
    hub.requests.reset()
    with faulty_hub(hub, storm):
        calm_down = threading.Thread(target=_calm_down_after_a_storm, args=(hub, steady), daemon=True)
        calm_down.start()
        counts = _crawl(hub, catalog)
        calm_down.join()
    statuses = hub.requests.by_status()
    assert statuses.get(429, 0) >= 4 and sum(n for s, n in statuses.items() if s >= 500) >= 2
    assert counts["failed"] == 0
    assert content(catalog) == content(first_crawl.catalog)


def test_a_crash_mid_crawl_loses_nothing_written_and_a_rerun_converges(
    first_crawl: FirstCrawl, hub: HubURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog.duckdb"
    store = crawl_records.store_adapters
    calls = []

    def store_then_crash(*args: object) -> None:
        if calls:
            raise RuntimeError("injected crash after the first batch")
        calls.append(1)
        store(*args)

    monkeypatch.setattr(crawl_records, "store_adapters", store_then_crash)
    with pytest.raises(RuntimeError, match="injected crash"):
        _crawl(hub, catalog)
    monkeypatch.undo()
    assert _adapter_count(catalog) == BATCH
    assert runs(catalog)[0]["status"] == "failed" and "injected crash" in runs(catalog)[0]["error"]

    counts = _crawl(hub, catalog)
    assert (counts["new"], counts["unchanged"]) == (counts["seen"] - BATCH, BATCH)
    assert content(catalog) == content(first_crawl.catalog)


def test_a_killed_crawl_process_loses_nothing_written_and_a_rerun_converges(
    first_crawl: FirstCrawl, prefect_api: str, hub: HubURL, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.duckdb"
    script = (
        "from flows.crawl import crawl_hub; import sys; "
        "crawl_hub(endpoint=sys.argv[1], catalog_path=sys.argv[2], batch_size=2, max_workers=1)"
    )
    hub.requests.reset()
    with faulty_hub(hub, Faults(latency_ms=100)):
        env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_LOGGING_LEVEL": "WARNING"}
        crawler = subprocess.Popen([sys.executable, "-c", script, hub, str(catalog)], env=env)
        try:
            # killed once two batches (two requests per adapter) are surely stored, long before the end
            _wait_for(lambda: hub.requests.by_kind().get("file-get", 0) >= 12, crawler)
            crawler.send_signal(signal.SIGKILL)
        finally:
            crawler.wait(timeout=60)
    written = _adapter_count(catalog)
    assert 0 < written < first_crawl.counts["seen"]
    assert runs(catalog)[0]["status"] == "running"  # nobody closed it

    counts = _crawl(hub, catalog)
    assert counts["unchanged"] == written
    assert content(catalog) == content(first_crawl.catalog)
    assert runs(catalog)[0]["status"] == "failed" and "interrupted" in runs(catalog)[0]["error"]


@pytest.mark.usefixtures("prefect_api")
def test_a_vanished_repo_is_marked_removed_and_a_changed_one_is_read_again(
    tiny_zoo: Path, manifest: dict, tmp_path: Path
) -> None:
    root = tmp_path / "hub"
    shutil.copytree(tiny_zoo, root)
    catalog = tmp_path / "catalog.duckdb"
    gone = next(e["repo_id"] for e in manifest["broken"] if e["kind"] == "dora")
    changed = manifest["experts"][0]["repo_id"]
    moved = manifest["experts"][1]["repo_id"]
    named = _named_adapters(root, manifest["experts"][2]["repo_id"], ("french", "checkpoint-10"))
    with serve_in_thread(root, realism=Realism()) as url:  # anonymous: a deleted repo answers 401, not 404
        seen = _crawl(url, catalog)["seen"]
        shutil.rmtree(root / gone)
        readme = root / changed / "README.md"
        readme.write_text(readme.read_text() + "\nA better description.\n")
        new_id = f"{moved}-v2"
        (root / moved).rename(root / new_id)
        (root / new_id / ".hub.json").write_text(json.dumps({"formerly": [moved]}))
        counts = _crawl(url, catalog)
    assert (counts["removed"], counts["renamed"], counts["updated"], counts["new"]) == (1, 1, 1, 1)
    with Catalog.open(catalog, read_only=True) as cat:
        removed = cat.query("SELECT removed FROM hub_repos WHERE repo_id = ?", [gone]).column(0).to_pylist()
        kept = cat.query("SELECT status FROM adapters WHERE repo_id = ?", [gone]).column(0).to_pylist()
        shown = cat.query("SELECT repo_id FROM adapter_overview").column(0).to_pylist()
        renamed = cat.query("SELECT * FROM renamed_repos").to_pylist()
        folders = cat.query("SELECT subfolder, status FROM adapter_folders WHERE repo_id = ?", [named]).to_pylist()
        modules = cat.query("SELECT DISTINCT subfolder FROM adapter_modules WHERE repo_id = ?", [named]).column(0)
    assert (removed, kept) == ([True], ["unsupported"])
    assert renamed == [{"old_id": moved, "new_id": new_id}]
    assert gone not in shown and moved not in shown and new_id in shown
    assert len(shown) == seen - 2  # the named adapters' repo has no adapter at its root
    assert folders == [{"subfolder": "checkpoint-10", "status": "ok"}, {"subfolder": "french", "status": "ok"}]
    assert sorted(modules.to_pylist()) == ["checkpoint-10", "french"]


@pytest.mark.usefixtures("prefect_api")
def test_a_gated_base_and_a_gated_adapter_are_read_again_when_the_credentials_change(
    tiny_zoo: Path, manifest: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anonymous, a gated base leaves its adapters unchecked (a misfit among them looks fine) and a gated
    adapter is refused; a crawl with a token that accepted the gates reads exactly those again."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    shutil.copytree(tiny_zoo, root)
    gated_adapter = manifest["experts"][0]["repo_id"]
    misfit = next(e["repo_id"] for e in manifest["broken"] if e["kind"] == "shape_mismatch")
    for repo in (manifest["base_model"], gated_adapter):
        meta = root / repo / ".hub.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "gated": "manual"}))
    catalog = tmp_path / "catalog.duckdb"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login"))

    def adapters() -> dict[str, dict]:
        with Catalog.open(catalog, read_only=True) as cat:
            rows = cat.query("SELECT repo_id, status, base_check, credentials FROM adapters WHERE subfolder = ''")
        return {r.pop("repo_id"): r for r in rows.to_pylist()}

    with serve_in_thread(root, realism=Realism(granted_tokens=frozenset({TOKEN}))) as url:
        _crawl(url, catalog)
        anonymous = adapters()
        again = _crawl(url, catalog)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        granted = _crawl(url, catalog)
    refused = sorted(repo for repo, a in anonymous.items() if a["credentials"] == "anonymous")
    assert anonymous[gated_adapter]["status"] == "gated"
    assert anonymous[misfit]["status"] == "ok"  # its base's shapes were refused: nothing to misfit
    assert anonymous[misfit]["base_check"].startswith(f"unchecked: base model {manifest['base_model']} not readable")
    assert misfit in refused and len(refused) > 3
    assert again["updated"] == 0  # the same credentials would be refused the same
    assert granted["updated"] == len(refused)  # other credentials: exactly the refused ones are read again
    now = adapters()
    assert now[gated_adapter]["status"] == "ok" and now[misfit]["status"] == "invalid"
    assert all(now[repo]["credentials"] is None for repo in refused)
    assert {now[repo]["base_check"] for repo in refused if now[repo]["status"] == "ok"} == {"fits"}


def test_the_run_publishes_progress_and_a_summary_table(first_crawl: FirstCrawl) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[first_crawl.flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    summary = {row["outcome"]: row["repos"] for row in json.loads(by_key["crawl-summary"].data)}
    assert summary == {**first_crawl.counts, "http_requests": summary["http_requests"]}
    reasons = json.loads(by_key["crawl-refusal-reasons"].data)
    pickle = "only pickled weights (adapter_model.bin); safetensors required"
    assert {"status": "unsupported", "reason": pickle, "repos": 1} in reasons
    assert by_key["crawl-progress"].data == 100.0
    quota = {row["bucket"]: row for row in json.loads(by_key["crawl-quota"].data)}
    resolvers = quota["resolvers"]  # a token's quota: the free tier's 5,000 per 5 minutes
    assert (resolvers["quota"], resolvers["window_s"]) == (5000, 300)
    assert resolvers["used"] > first_crawl.counts["seen"] and resolvers["remaining"] <= 5000 - resolvers["used"]


def test_the_token_reaches_neither_the_catalog_nor_prefect(first_crawl: FirstCrawl) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(first_crawl.flow_run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
    everything = [json.dumps(flow_run.model_dump(mode="json")), *(log.message for log in logs)]
    with Catalog.open(first_crawl.catalog, read_only=True) as cat:
        everything += [json.dumps(cat.read_table(t).to_pylist(), default=str) for t in cat.tables()]
    assert logs and not any(TOKEN in text for text in everything)


@pytest.mark.usefixtures("prefect_api")
def test_the_hourly_schedule_creates_runs_on_the_prefect_api() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    deployments = {d.name: d for d in deployments_from_yaml(DEPLOYMENTS_FILE)}
    deployment_id = deployments["crawl-hub-hourly"].apply()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
        assert [s.schedule.cron for s in deployment.schedules] == ["7 * * * *"]
        # one crawl at a time: a run due while one runs is cancelled rather than stacked up
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
        run_filter = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]))
        deadline = time.monotonic() + 90
        scheduled: list = []
        while not scheduled and time.monotonic() < deadline:
            time.sleep(1)
            runs = client.read_flow_runs(flow_run_filter=run_filter)
            scheduled = [r for r in runs if r.state and r.state.is_scheduled()]
    assert scheduled, "the scheduler created no run within 90 s"
    times = sorted(r.expected_start_time for r in scheduled)
    assert all(t.minute == 7 for t in times)


@pytest.mark.usefixtures("prefect_api")
def test_cli_crawls_queries_and_exports(hub: HubURL, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    catalog = str(tmp_path / "c.duckdb")
    on_catalog = ["--catalog", catalog]
    crawled = runner.invoke(app, ["crawl", "--endpoint", hub, *on_catalog, "--search", "adapter", "--limit", "3"])
    assert crawled.exit_code == 0, crawled.output
    assert "seen 3" in crawled.output
    as_json = runner.invoke(app, ["sql", "SELECT repo_id, r FROM adapters", *on_catalog, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert len(json.loads(as_json.output)) == 3
    as_csv = runner.invoke(app, ["sql", "SELECT repo_id, target_modules FROM adapters", *on_catalog, "-f", "csv"])
    assert as_csv.output.splitlines()[0] == '"repo_id","target_modules"'
    as_table = runner.invoke(app, ["sql", "SELECT * FROM adapters_per_base_model", *on_catalog])
    assert "zoo-base/llama-tiny" in as_table.output
    bad = runner.invoke(app, ["sql", "DELETE FROM adapters", *on_catalog])
    assert bad.exit_code == 1
    exported = runner.invoke(app, ["catalog", "export", str(tmp_path / "parquet"), *on_catalog])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "parquet" / "adapters.parquet").is_file()


@contextmanager
def faulty_hub(url: HubURL, faults: Faults) -> Iterator[None]:
    """The module's hub misbehaves inside (same URL, so catalogs stay comparable, listing scope included)."""
    url.hub.faults = faults
    try:
        yield
    finally:
        url.hub.faults = Faults()


def _calm_down_after_a_storm(url: HubURL, steady: Faults) -> None:
    """A storm first (a 429 burst and many 5xx); once it gave at least four 429s and two 5xx, only the
    steady 5% of 5xx and of truncated bodies remain (a rate limit for the whole crawl would only make it slow)."""

    def stormed() -> bool:
        statuses = url.requests.by_status()
        return statuses.get(429, 0) >= 4 and sum(n for s, n in statuses.items() if s >= 500) >= 2

    deadline = time.monotonic() + 60
    while not stormed() and time.monotonic() < deadline:
        time.sleep(0.01)
    url.hub.faults = steady


def _named_adapters(root: Path, expert: str, names: tuple[str, ...]) -> str:
    """A repo whose adapters are all in subfolders (PEFT's named adapters, a trainer's checkpoints)."""
    repo_id = f"{expert}-named"
    for name in names:
        folder = root / repo_id / name
        folder.mkdir(parents=True)
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(root / expert / file, folder / file)
    shutil.copy(root / expert / "README.md", root / repo_id / "README.md")
    return repo_id


def _adapter_count(catalog: Path) -> int:
    with Catalog.open(catalog, read_only=True) as cat:
        return cat.read_table("adapters").num_rows


def _wait_for(condition, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the crawl ended (code {process.returncode}) before it could be killed")
        if time.monotonic() > deadline:
            raise AssertionError("the crawl made no progress")
        time.sleep(0.05)
