"""The built tiny demo zoo: manifest vs files, broken repos, loadable models, experts that beat the base."""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import pytest
import yaml

from zoo.demozoo import build_zoo, load_suite, make_suite, score_model
from zoo.demozoo.profiles import get_profile

pytestmark = pytest.mark.slow


def card(repo: Path) -> dict:
    text = (repo / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def manifest(tiny_zoo: Path) -> dict:
    return json.loads((tiny_zoo / "zoo.json").read_text())


@pytest.fixture(scope="module")
def base_and_tokenizer(tiny_zoo: Path, manifest: dict):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_zoo / manifest["base_model"]
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_second_build_is_cached(tiny_zoo: Path) -> None:
    started = time.monotonic()
    assert build_zoo(tiny_zoo, profile="tiny", seed=0) == tiny_zoo
    assert time.monotonic() - started < 2.0
    assert not list(tiny_zoo.parent.glob(f".{tiny_zoo.name}.building-*"))


def test_published_datasets_are_the_seeded_suite(tiny_zoo: Path, manifest: dict) -> None:
    suite = make_suite(get_profile("tiny"), seed=0)
    assert load_suite(tiny_zoo) == suite
    assert [t["task"] for t in manifest["tasks"]] == [t.name for t in suite]
    for entry in manifest["tasks"]:
        repo = tiny_zoo / "datasets" / entry["dataset"]
        meta = card(repo)
        assert entry["family"] in meta["tags"] and entry["split"] in meta["tags"]
        assert [f["path"] for f in meta["configs"][0]["data_files"]] == (
            ["train.jsonl", "test.jsonl"] if entry["split"] == "held-in" else ["test.jsonl"])


def test_every_expert_matches_its_manifest_entry(tiny_zoo: Path, manifest: dict) -> None:
    from safetensors import safe_open

    tasks = {t["task"]: t for t in manifest["tasks"]}
    assert len(manifest["experts"]) == 12
    for entry in manifest["experts"]:
        repo = tiny_zoo / entry["repo_id"]
        config = json.loads((repo / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and not config["use_dora"]
        assert config["r"] == entry["rank"] and config["lora_alpha"] == entry["alpha"]
        assert config["use_rslora"] == entry["use_rslora"]
        assert config["target_modules"] == entry["target_modules"]
        assert (config["rank_pattern"], config["alpha_pattern"]) == (entry["rank_pattern"], entry["alpha_pattern"])
        assert config["base_model_name_or_path"] == manifest["base_model"]
        with safe_open(str(repo / "adapter_model.safetensors"), "pt") as weights:
            keys = list(weights.keys())
            modules = {k.split(".")[-3] for k in keys}
            assert modules == set(entry["modules"])
            for key in keys:
                rank = weights.get_slice(key).get_shape()[0 if "lora_A" in key else 1]
                module = key.split(".")[-3]
                assert rank == entry["rank_pattern"].get(module, entry["rank"])
        meta = card(repo)
        assert meta["base_model"] == manifest["base_model"] and meta["library_name"] == "peft"
        assert meta["datasets"] == [entry["dataset"]] and meta["license"] == entry["license"]
        assert {entry["family"], entry["skill"]} <= set(meta["tags"])
        assert tasks[entry["task"]]["split"] == "held-in" and tasks[entry["task"]]["dataset"] == entry["dataset"]
        stats = json.loads((repo / ".hub.json").read_text())
        assert (stats["downloads"], stats["likes"]) == (entry["downloads"], entry["likes"])


def test_experts_vary_the_way_hub_adapters_do(manifest: dict) -> None:
    experts = manifest["experts"]
    assert {e["rank"] for e in experts} == {4, 8, 16}
    assert len({e["alpha"] for e in experts}) >= 3
    assert any(e["use_rslora"] for e in experts) and not all(e["use_rslora"] for e in experts)
    assert any(e["rank_pattern"] and e["alpha_pattern"] for e in experts)
    assert any(isinstance(e["target_modules"], str) for e in experts)
    assert {frozenset(e["modules"]) for e in experts if isinstance(e["target_modules"], list)} >= {
        frozenset({"q_proj", "v_proj"}), frozenset({"q_proj", "k_proj", "v_proj", "o_proj"})}
    assert any("down_proj" in e["modules"] for e in experts)
    assert len({e["license"] for e in experts}) >= 3 and len({e["repo_id"].split("/")[0] for e in experts}) >= 3
    assert len({e["downloads"] for e in experts}) == len(experts)
    assert {e["family"] for e in experts} == set(manifest["families"])


def test_broken_repos_are_broken_as_described(tiny_zoo: Path, manifest: dict) -> None:
    from safetensors.torch import load_file

    broken = {b["kind"]: b for b in manifest["broken"]}
    assert set(broken) == {"pickle_only", "nan_weights", "missing_config", "malformed_config", "shape_mismatch",
                           "dora", "path_traversal"}
    for entry in broken.values():
        repo = tiny_zoo / entry["repo_id"]
        assert entry["reason"] and "{" not in entry["repo_id"]
        assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == entry["files"]
        assert card(repo)["base_model"] == manifest["base_model"]

    def repo(kind: str) -> Path:
        return tiny_zoo / broken[kind]["repo_id"]

    assert (repo("pickle_only") / "adapter_model.bin").read_bytes()[:2] == b"PK"  # torch's zip pickle, never loaded
    assert not (repo("pickle_only") / "adapter_model.safetensors").exists()
    assert any(t.isnan().any() for t in load_file(repo("nan_weights") / "adapter_model.safetensors").values())
    assert not (repo("missing_config") / "adapter_config.json").exists()
    with pytest.raises(json.JSONDecodeError):
        json.loads((repo("malformed_config") / "adapter_config.json").read_text())
    base = load_file(tiny_zoo / manifest["base_model"] / "model.safetensors")
    hidden = base["model.embed_tokens.weight"].shape[1]
    wide = load_file(repo("shape_mismatch") / "adapter_model.safetensors")
    assert all(t.shape[1] != hidden for k, t in wide.items() if "lora_A" in k)
    assert json.loads((repo("dora") / "adapter_config.json").read_text())["use_dora"] is True
    assert any("lora_magnitude_vector" in k for k in load_file(repo("dora") / "adapter_model.safetensors"))
    traversal = repo("path_traversal")
    assert any(f.startswith("..%2F") for f in broken["path_traversal"]["files"])
    index = json.loads((traversal / "adapter_model.safetensors.index.json").read_text())
    assert all(shard.startswith("../") for shard in index["weight_map"].values())


def test_base_and_tokenizer_load_from_the_folder(tiny_zoo: Path, manifest: dict, base_and_tokenizer) -> None:
    base, tokenizer = base_and_tokenizer
    meta = card(tiny_zoo / manifest["base_model"])
    assert meta["library_name"] == "transformers" and meta["license"]
    assert type(base).__name__ == "LlamaForCausalLM"
    ids = tokenizer('reverse "abc": ')["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids, skip_special_tokens=True) == 'reverse "abc": '
    prompt = tokenizer(["first of [A,B]: "], return_tensors="pt")
    out = base.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 1 and out.shape[1] > prompt["input_ids"].shape[1]


def test_every_expert_beats_the_base_on_its_own_task(tiny_zoo: Path, manifest: dict, base_and_tokenizer) -> None:
    """Held-in test inputs (never trained on): expert NLL below 0.7x the base's, for every expert."""
    from peft import PeftModel

    base, tokenizer = base_and_tokenizer
    suite = {t.name: t for t in load_suite(tiny_zoo)}
    ratios = {}
    for entry in manifest["experts"]:
        examples = suite[entry["task"]].test
        expert = PeftModel.from_pretrained(copy.deepcopy(base), tiny_zoo / entry["repo_id"])
        before = score_model(base, tokenizer, examples, generate=False)["nll"]
        after = score_model(expert, tokenizer, examples, generate=False)["nll"]
        ratios[entry["repo_id"]] = after / before
    assert max(ratios.values()) < 0.7, ratios
    assert sum(ratios.values()) / len(ratios) < 0.5, ratios


def test_families_are_visible_in_weight_space(tiny_zoo: Path) -> None:
    """Experts of one family have more similar weight updates than experts of different families."""
    from zoo.demozoo.report import family_similarity

    similarity = family_similarity(tiny_zoo)
    assert similarity["within"] > 3 * max(similarity["across"], 0.0)
    assert similarity["ari"] > 0.3  # random labels score 0; measured 0.5-0.75 on tiny builds


def test_score_model_counts_exact_matches(base_and_tokenizer) -> None:
    base, tokenizer = base_and_tokenizer
    examples = [{"prompt": "x", "target": "y"}, {"prompt": "a", "target": "b"}]
    scores = score_model(base, tokenizer, examples)
    assert scores["n"] == 2 and scores["nll"] > 0 and scores["exact_match"] in (0.0, 0.5, 1.0)
    assert math.isnan(score_model(base, tokenizer, examples, generate=False)["exact_match"])


def test_an_expert_beats_the_base_through_the_local_hub(tiny_hub, manifest: dict, tiny_zoo: Path, tmp_path) -> None:
    """What a user does: fetch the base and an expert with the hub client, load them, compare on the task."""
    from huggingface_hub import snapshot_download
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    endpoint = str(tiny_hub)
    entry = next(e for e in manifest["experts"] if e["task"] == "lists-length")
    base_dir = snapshot_download(manifest["base_model"], endpoint=endpoint, cache_dir=tmp_path, token=False)
    expert_dir = snapshot_download(entry["repo_id"], endpoint=endpoint, cache_dir=tmp_path, token=False)
    data_dir = snapshot_download(entry["dataset"], repo_type="dataset", endpoint=endpoint, cache_dir=tmp_path,
                                 token=False)
    from zoo.demozoo.tasks import read_jsonl

    examples = read_jsonl(Path(data_dir) / "test.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    before = score_model(base, tokenizer, examples)
    expert = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), expert_dir).eval()
    after = score_model(expert, tokenizer, examples)
    assert after["nll"] < 0.7 * before["nll"]
    assert after["exact_match"] > before["exact_match"]


def test_cli_build_reuses_the_cached_zoo_and_prints_a_summary(tiny_zoo: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    run = CliRunner().invoke(app, ["demo-zoo", "build", str(tiny_zoo), "--profile", "tiny", "--seed", "0"],
                             env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    assert "zoo-base/llama-tiny" in run.output and "broken repos" in run.output
