"""The harness end to end on the tiny demo zoo: a handful of candidates, one example per task."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from flows.cli.demo_zoo import demo_zoo_suite, export_demo_zoo_suite
from zoo.candidates import CandidateChoices, CandidateSpec, Member, exact_clusters, plan_candidates
from zoo.demozoo.pool import demo_zoo_experts
from zoo.eval import evaluate, read_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest(tiny_zoo) -> dict:
    return json.loads((tiny_zoo / "zoo.json").read_text())


def test_demo_zoo_suite_exports_every_task_with_its_split(tiny_zoo, manifest, tmp_path):
    path = export_demo_zoo_suite(tiny_zoo, tmp_path / "suite.jsonl", max_per_task=2)
    examples = read_suite(path)
    assert examples == demo_zoo_suite(tiny_zoo, max_per_task=2)
    splits = {t["task"]: t["split"] for t in manifest["tasks"]}
    assert {e.task: e.split for e in examples} == splits
    assert all(e.skill and e.family for e in examples)


def test_candidates_of_every_kind_are_scored_costed_and_routed(tiny_zoo, manifest):
    pool = demo_zoo_experts(tiny_zoo)
    reverse = next(e for e in manifest["experts"] if e["task"] == "strings-reverse")["repo_id"]
    add = next(e for e in manifest["experts"] if e["task"] == "arithmetic-add")["repo_id"]
    choices = CandidateChoices(merge_methods=["linear"], routers=["arrow", "phatgoose"], experts=False,
                               libraries_per_cluster=False,
                               router_settings={"phatgoose": {"steps": 2, "examples_per_expert": 1}})
    specs = plan_candidates([Member.parse(r) for r in pool.names], exact_clusters(pool, 2), choices)
    specs += [CandidateSpec("expert", (m,), name=m) for m in (reverse, add)]
    results = evaluate(specs, demo_zoo_suite(tiny_zoo), tiny_zoo / manifest["base_model"], pool, max_examples=1)

    names = [c.name for c in results.candidates]
    assert names == ["base", "uniform-merge", "cluster0-linear", "cluster1-linear", "all-arrow", "all-phatgoose",
                     reverse, add, "oracle"]
    held_in = sum(t["split"] == "held-in" for t in manifest["tasks"])
    for c in results.candidates:
        assert len(c.tasks) == len(manifest["tasks"])
        assert c.split_means()["held-in"]["tasks"] == held_in
        assert all(0.0 <= t.metrics["exact_match"] <= 1.0 and t.metrics["nll"] > 0 for t in c.tasks)
    assert set(results["oracle"].chosen.values()) <= {reverse, add}
    # The reverse expert, folded into the base, is better than the base on its own task.
    assert results[reverse].task("strings-reverse").metrics["nll"] < results["base"].task("strings-reverse").metrics["nll"]
    # Chance counts only the layers the reverse expert adapts (elsewhere no pick could be right): per layer,
    # one reverse expert among the experts that adapt that module kind, the same in every decoder layer.
    adapting = {kind: [e for e in manifest["experts"] if kind in e["modules"]]
                for kind in {k for e in manifest["experts"] for k in e["modules"]}}
    reverse_kinds = [k for k, experts in adapting.items() if any(e["task"] == "strings-reverse" for e in experts)]
    chance = sum(1 / len(adapting[k]) for k in reverse_kinds) / len(reverse_kinds)
    assert len(reverse_kinds) < len(adapting)  # so the old all-layers mean would differ
    for name in ("all-arrow", "all-phatgoose"):
        routing = {r.task: r for r in results[name].routing}
        assert set(routing) == {t["task"] for t in manifest["tasks"]}
        assert routing["strings-reverse"].chance_skill == pytest.approx(chance, rel=1e-6)
        assert 0.0 <= routing["strings-reverse"].skill <= 1.0 and routing["strings-reverse"].tokens > 0
        assert routing["compose-reverse-double"].skill is None  # no expert has a composition's skill
    assert results["all-phatgoose"].cost.build_s > 0
    summary = results.summary_rows()
    assert json.loads(json.dumps(results.to_json()))["summary"] == json.loads(json.dumps(summary))


def test_zoo_evaluate_prints_a_leaderboard_and_writes_results(tiny_zoo, tmp_path):
    from flows.cli.evaluate import evaluate as evaluate_command

    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("other")(lambda: None)  # two commands, so the name is a real subcommand
    output = tmp_path / "results.json"
    run = CliRunner().invoke(app, ["evaluate", str(tiny_zoo), "--candidates", "base,uniform", "--max-examples", "1",
                                   "--output", str(output)], env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    assert "Leaderboard" in run.output and "uniform-merge" in run.output
    assert [row["candidate"] for row in json.loads(output.read_text())["summary"]] == ["base", "uniform-merge"]


def test_the_pool_gives_data_only_where_the_card_names_it_when_asked_to_see_the_hub(tmp_path):
    experts = [{"repo_id": f"org/e{i}", "dataset": f"org/d{i}", "dataset_on_card": on_card, "task": f"t{i}",
                "skill": "s", "family": "f"} for i, on_card in enumerate((True, False))]
    (tmp_path / "zoo.json").write_text(json.dumps({"experts": experts}))
    assert [e.train_file for e in demo_zoo_experts(tmp_path, "cards").experts.values()] == [
        tmp_path / "datasets" / "org/d0" / "train.jsonl", None]
    assert all(e.train_file for e in demo_zoo_experts(tmp_path).experts.values())
    with pytest.raises(ValueError, match="data_from"):
        demo_zoo_experts(tmp_path, "hub")
