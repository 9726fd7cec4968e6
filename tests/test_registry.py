"""MLflow registry on a real SQLite store: one run per evaluation, a champion alias that moves only to a
strictly better candidate, and registered models that generate exactly like the candidate they hold."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from tasks.registry import (
    CandidateRecord,
    ChampionInfo,
    champion,
    ensure_model,
    experiment_name,
    is_better,
    log_candidate,
    metric_key,
    register_if_better,
    registered_model_name,
    use_tracking_uri,
)
from zoo.adapters import load_adapter
from zoo.eval.generation import greedy_completions
from flows.cli.demo_zoo import demo_zoo_suite
from zoo.merge import merge
from zoo.plots import leaderboard_chart

pytestmark = pytest.mark.slow

SUITE = "demo-suite"


# ---------------------------------------------------------------- names and rules, no store


def test_names_are_mlflow_safe():
    assert experiment_name("zoo-base/llama-tiny") == "recycled--zoo-base--llama-tiny"
    assert registered_model_name("zoo-base/llama-tiny", SUITE) == "recycled--zoo-base--llama-tiny--demo-suite"
    assert registered_model_name("Org/Model v2:beta", "suite #1") == "recycled--Org--Model-v2-beta--suite-1"
    with pytest.raises(ValueError):
        registered_model_name("///", SUITE)


def test_metric_keys_keep_each_task_one_level_deep():
    assert metric_key("held-out_exact_match") == "held-out_exact_match"
    assert metric_key("em/strings:reverse (v2)") == "em/strings_reverse _v2_"
    assert metric_key("nll/../x") == "nll/_/x"
    assert metric_key("em/a/b") == "em/a/b"


def test_better_means_higher_exact_match_then_lower_nll():
    assert is_better((0.6, 2.0), (0.5, 1.0))
    assert not is_better((0.4, 0.1), (0.5, 1.0))
    assert is_better((0.5, 0.9), (0.5, 1.0))
    assert is_better((0.3, 0.9), (0.1 + 0.2, 1.0))  # means equal up to rounding are a tie
    assert not is_better((0.5, 1.0), (0.5, 1.0))  # strictly better, or not at all
    assert not is_better((math.nan, 0.1), (0.0, 5.0))
    assert is_better((0.0, 5.0), (math.nan, math.nan))


def test_candidate_records_are_checked():
    base = Path("base-model")
    with pytest.raises(ValueError, match="artifact_dir"):
        CandidateRecord(key="k", eval_key="e", name="x", kind="expert", base_model_dir=base, suite_name=SUITE,
                        suite_hash="s")
    with pytest.raises(ValueError, match="kind"):
        CandidateRecord(key="k", eval_key="e", name="x", kind="oracle", base_model_dir=base, suite_name=SUITE,
                        suite_hash="s")
    with pytest.raises(ValueError, match="not a hash"):
        CandidateRecord(key="k'; drop", eval_key="e", name="x", kind="base", base_model_dir=base, suite_name=SUITE,
                        suite_hash="s")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """A freshly migrated SQLite store, made once (migrations take seconds) and copied for every test."""
    database = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments()
    return database


@pytest.fixture
def tracking_uri(empty_store, tmp_path, monkeypatch) -> str:
    """A private store; nothing may leak into MLflow's defaults (a global URI, ./mlflow.db, ./mlruns)."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    was_set = mlflow.is_tracking_uri_set()
    yield f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert mlflow.is_tracking_uri_set() == was_set
    assert not any(cwd.iterdir()), "something was written to MLflow's default store"


@pytest.fixture(scope="module")
def zoo_meta(tiny_zoo) -> dict:
    return json.loads((tiny_zoo / "zoo.json").read_text())


@pytest.fixture(scope="module")
def experts(zoo_meta) -> list[str]:
    """Two experts of different skills (their repo ids)."""
    return [e["repo_id"] for e in zoo_meta["experts"][:2]]


@pytest.fixture(scope="module")
def merged_dir(tiny_zoo, experts, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("merged") / "linear"
    merge([load_adapter(tiny_zoo / e) for e in experts], "linear").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def prompts(tiny_zoo, zoo_meta) -> list[str]:
    """Two prompts of each expert's task and one held-out prompt."""
    tasks = {e["task"] for e in zoo_meta["experts"][:2]}
    suite = demo_zoo_suite(tiny_zoo, max_per_task=2)
    held_out = next(e.prompt for e in suite if e.split == "held-out")
    return [e.prompt for e in suite if e.task in tasks] + [held_out]


def base_dir(tiny_zoo: Path) -> Path:
    return tiny_zoo / json.loads((tiny_zoo / "zoo.json").read_text())["base_model"]


def record(tiny_zoo: Path, kind: str, eval_key: str, artifact_dir: Path | None = None, members=(),
           **extra) -> CandidateRecord:
    return CandidateRecord(key=f"cand-{eval_key}", eval_key=eval_key, name=f"{kind}-{eval_key}", kind=kind,
                           base_model_dir=base_dir(tiny_zoo), suite_name=SUITE, suite_hash="suite0",
                           members=list(members), member_shas={m: "a" * 40 for m in members},
                           artifact_dir=artifact_dir, **extra)


def load_served(tracking_uri: str, uri: str):
    with use_tracking_uri(tracking_uri):
        return mlflow.pyfunc.load_model(uri)


def load_base(tiny_zoo: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(base_dir(tiny_zoo)).eval(),
            AutoTokenizer.from_pretrained(base_dir(tiny_zoo)))


# ---------------------------------------------------------------- runs and versions


def test_champion_moves_only_to_strictly_better_candidates(tracking_uri, tiny_zoo, zoo_meta, experts, merged_dir):
    base_model = zoo_meta["base_model"]
    name = registered_model_name(base_model, SUITE)
    assert champion(tracking_uri, name) is None
    expert_run = log_candidate(tracking_uri, base_model, record(tiny_zoo, "expert", "e1", tiny_zoo / experts[0],
                                                                 members=experts[:1]))
    merge_record = record(tiny_zoo, "merge", "m1", merged_dir, members=experts, method="linear")
    merge_run = log_candidate(tracking_uri, base_model, merge_record)
    worse_run = log_candidate(tracking_uri, base_model, record(tiny_zoo, "expert", "e2", tiny_zoo / experts[1],
                                                                members=experts[1:]))

    first = register_if_better(tracking_uri, name, expert_run, (0.5, 1.5))
    assert (first.registered, first.version, first.champion_version) == (True, "1", "1")
    better = register_if_better(tracking_uri, name, merge_run, (0.7, 1.0))
    assert (better.registered, better.version, better.champion_version) == (True, "2", "2")
    worse = register_if_better(tracking_uri, name, worse_run, (0.6, 0.2))
    assert (worse.registered, worse.version, worse.champion_version) == (False, None, "2")
    assert "does not beat" in worse.reason

    again = register_if_better(tracking_uri, name, merge_run, (0.7, 1.0))
    assert (again.registered, again.version, again.champion_version) == (False, "2", "2")
    assert again.reason.startswith("already registered")
    # A registered evaluation is never registered again, whatever score is claimed for it now.
    replay = register_if_better(tracking_uri, name, expert_run, (0.9, 0.1))
    assert (replay.registered, replay.version, replay.champion_version) == (False, "1", "2")

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == [1, 2]
    assert champion(tracking_uri, name) == ChampionInfo(version="2", run_id=merge_run, candidate_key="cand-m1",
                                                        eval_key="m1", score=(0.7, 1.0))
    tags = client.get_model_version(name, "2").tags
    assert tags["zoo.kind"] == "merge" and tags["zoo.suite_hash"] == "suite0"
    assert client.get_registered_model(name).aliases == {"champion": 2}


def test_logging_an_evaluation_twice_gives_one_run(tracking_uri, tiny_zoo, zoo_meta, experts, merged_dir, tmp_path):
    base_model = zoo_meta["base_model"]
    rows = [{"candidate": "linear", "held-in_exact_match": 0.6, "held-out_exact_match": 0.3}]
    metrics = {"held-out_exact_match": 0.3, "held-out_nll": 1.25, "em/strings:reverse": 0.5, "build_s": 0.1}
    settings = {"merge": {"density": 0.5}, "top_k": 2}
    rec = record(tiny_zoo, "merge", "m1", merged_dir, members=experts, method="linear", metrics=metrics,
                 settings=settings, plots=[leaderboard_chart(rows, tmp_path / "leaderboard.png")])
    run_id = log_candidate(tracking_uri, base_model, rec)
    assert log_candidate(tracking_uri, base_model, rec) == run_id

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name(base_model))
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
    assert experiment.artifact_location == (tmp_path / "mlflow-artifacts").resolve().as_uri()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "merge-m1"
    assert run.data.params["kind"] == "merge" and run.data.params["method"] == "linear"
    assert run.data.params["members"] == ", ".join(experts)
    assert run.data.params["settings.merge.density"] == "0.5" and run.data.params["settings.top_k"] == "2"
    assert run.data.metrics == {"held-out_exact_match": 0.3, "held-out_nll": 1.25, "em/strings_reverse": 0.5,
                                "build_s": 0.1}
    tags = run.data.tags
    assert (tags["zoo.candidate_key"], tags["zoo.eval_key"], tags["zoo.suite_hash"], tags["zoo.kind"]) == (
        "cand-m1", "m1", "suite0", "merge")
    assert [tags["zoo.member.0"], tags["zoo.member.1"]] == [f"{e}@{'a' * 40}" for e in experts]
    assert {a.path for a in client.list_artifacts(run_id)} == {"candidate", "candidate.json", "plots"}
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/leaderboard.png"]
    assert sorted(a.path for a in client.list_artifacts(run_id, "candidate")) == [
        "candidate/adapter_config.json", "candidate/adapter_model.safetensors"]
    saved = json.loads(Path(client.download_artifacts(run_id, "candidate.json", str(tmp_path))).read_text())
    assert saved["members"] == experts and saved["base_model"] == base_model and saved["metrics"] == metrics

    # Another evaluation of the same candidate (new suite or settings) is a new run.
    other = log_candidate(tracking_uri, base_model, record(tiny_zoo, "merge", "m2", merged_dir, members=experts))
    assert other != run_id


def test_a_run_that_failed_half_way_is_not_reused(tracking_uri, tiny_zoo, zoo_meta, monkeypatch):
    from tasks.registry import runs

    base_model = zoo_meta["base_model"]
    rec = record(tiny_zoo, "base", "b-retry")
    with pytest.raises(ValueError, match="missing plot"):
        log_candidate(tracking_uri, base_model, record(tiny_zoo, "base", "b-retry", plots=[Path("nowhere.png")]))

    def crash(artifacts):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(runs, "_log_model", crash)
        with pytest.raises(OSError, match="disk full"):
            log_candidate(tracking_uri, base_model, rec)
    run_id = log_candidate(tracking_uri, base_model, rec)
    assert log_candidate(tracking_uri, base_model, rec) == run_id
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name(base_model)).experiment_id
    assert sorted(r.info.status for r in client.search_runs([experiment])) == ["FAILED", "FINISHED"]


def test_long_member_lists_are_cut_in_params_and_whole_in_candidate_json(tracking_uri, tiny_zoo, zoo_meta, tmp_path):
    members = [f"some-org/adapter-number-{i:04d}" for i in range(400)]
    run_id = log_candidate(tracking_uri, zoo_meta["base_model"], record(tiny_zoo, "base", "b-long", members=members))
    client = MlflowClient(tracking_uri=tracking_uri)
    param = client.get_run(run_id).data.params["members"]
    assert len(param) == 6000 and param.endswith("(truncated; see candidate.json)")
    saved = json.loads(Path(client.download_artifacts(run_id, "candidate.json", str(tmp_path))).read_text())
    assert saved["members"] == members


# ---------------------------------------------------------------- served models


def test_served_models_generate_like_the_candidate_they_hold(tracking_uri, tiny_zoo, zoo_meta, experts, merged_dir,
                                                            prompts):
    from peft import PeftModel

    base_model = zoo_meta["base_model"]
    name = registered_model_name(base_model, SUITE)
    base_run = log_candidate(tracking_uri, base_model, record(tiny_zoo, "base", "b1"))
    assert register_if_better(tracking_uri, name, base_run, (0.1, 3.0)).version == "1"
    # A pipeline logs runs without the model and adds it, once, to the run it registers.
    merge_record = record(tiny_zoo, "merge", "m1", merged_dir, members=experts)
    merge_run = log_candidate(tracking_uri, base_model, merge_record, with_model=False)
    ensure_model(tracking_uri, merge_run, merge_record)
    ensure_model(tracking_uri, merge_run, merge_record)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_run(merge_run).info.experiment_id
    assert len(client.search_logged_models([experiment], filter_string=f"source_run_id = '{merge_run}'")) == 1
    assert register_if_better(tracking_uri, name, merge_run, (0.7, 1.0)).champion_version == "2"

    served = load_served(tracking_uri, f"models:/{name}@champion")
    out = served.predict(prompts[:1])
    assert isinstance(out, list) and len(out) == 1 and isinstance(out[0], str)

    model, tokenizer = load_base(tiny_zoo)
    base_out = greedy_completions(model, tokenizer, prompts, 32)
    folded = PeftModel.from_pretrained(model, merged_dir).merge_and_unload().eval()
    expected = greedy_completions(folded, tokenizer, prompts, 32)
    assert served.predict(prompts) == expected
    assert expected != base_out  # the adapter is really there
    frame = pd.DataFrame({"prompt": prompts})
    assert served.predict(frame, params={"max_new_tokens": 3}) == greedy_completions(folded, tokenizer, prompts, 3)

    served_base = load_served(tracking_uri, f"models:/{name}/1")
    assert served_base.predict(prompts) == base_out


def test_routed_library_is_registered_and_served(tracking_uri, tiny_zoo, zoo_meta, experts, prompts, tmp_path):
    from zoo.library import MemberSource, build_library, load_library, save_library

    base_model = zoo_meta["base_model"]
    sources = [MemberSource(tiny_zoo / e, name=e) for e in experts]
    library = build_library(sources, base_model=base_model, router="arrow", settings={"top_k": 1})
    folder = save_library(library, tmp_path / "library", copy_experts=True)
    rec = record(tiny_zoo, "library", "a1", folder, members=experts, settings={"top_k": 1})
    name = registered_model_name(base_model, "arrow-suite")
    registration = register_if_better(tracking_uri, name, log_candidate(tracking_uri, base_model, rec), (0.4, 1.1))
    assert registration.registered and registration.champion_version == "1"

    served = load_served(tracking_uri, f"models:/{name}@champion")
    model, tokenizer = load_base(tiny_zoo)
    load_library(folder).route(model)
    assert served.predict(prompts) == greedy_completions(model, tokenizer, prompts, 32)

    referenced = save_library(library, tmp_path / "referenced", copy_experts=False)
    with pytest.raises(ValueError, match="copy_experts=True"):
        log_candidate(tracking_uri, base_model, record(tiny_zoo, "library", "a2", referenced, members=experts))
