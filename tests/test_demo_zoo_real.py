"""The real profile: SmolLM2-135M-Instruct converted exactly from its GGUF, the planned zoo, and a cut-down build.

``real-mini`` is the real profile with two families, one expert each and two training steps: the same
code path (conversion, publishing, forked expert training, broken repos, manifest) in about a minute.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TEST_CACHE
from zoo.demozoo import build_zoo, make_suite
from zoo.demozoo.experts import plan_experts
from zoo.demozoo.profiles import get_profile

REAL = get_profile("real")


def card(repo: Path) -> dict:
    return yaml.safe_load((repo / "README.md").read_text().split("---\n")[1])


def test_real_profile_plans_the_zoo_the_issue_asks_for() -> None:
    suite = make_suite(REAL, seed=0)
    experts = plan_experts(suite, "smollm2-135m-instruct", REAL, seed=0)
    trained = [t for t in suite if t.kind == "trained"]
    assert len(experts) >= 16 and len(trained) >= 12 and len({t.family for t in trained}) >= 4
    assert all(len({e.template for e in t.train}) >= 2 for t in trained)
    assert {t.kind for t in suite} == {"trained", "paraphrase", "unseen-skill", "composition"}
    recipes = [e.recipe for e in experts]
    assert {r.rank for r in recipes} <= {4, 8, 16} and len({r.rank for r in recipes}) == 3
    assert len({tuple(r.modules) for r in recipes}) >= 3
    assert any(r.rslora for r in recipes) and any(r.alpha_pattern for r in recipes)
    orgs_per_task = defaultdict(set)
    for e in experts:
        orgs_per_task[e.task.name].add(e.repo_id.split("/")[0])
    assert sum(len(orgs) == 2 for orgs in orgs_per_task.values()) >= 3
    assert 1 <= sum(not e.dataset_on_card for e in experts) <= 2
    for task in suite:  # one-line answers after a one-line prompt: a newline or EOS stop rule ends them
        for example in task.train + task.test:
            assert example.prompt.endswith("\n") and "\n" not in example.prompt[:-1]
            assert example.target and "\n" not in example.target and example.target == example.target.strip()


def test_held_in_test_inputs_are_never_trained_on() -> None:
    for task in make_suite(REAL, seed=0):
        if task.kind == "trained":
            assert not {e.prompt for e in task.train} & {e.prompt for e in task.test}


@pytest.fixture(scope="module")
def real_zoo() -> Path:
    return build_zoo(TEST_CACHE / "demo-zoo-real-mini", profile="real-mini", seed=0)


@pytest.fixture(scope="module")
def manifest(real_zoo: Path) -> dict:
    return json.loads((real_zoo / "zoo.json").read_text())


@pytest.mark.slow
def test_converted_base_has_the_logits_of_transformers_gguf_load(real_zoo: Path, manifest: dict) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.demozoo.gguf_base import load_gguf

    base_dir = real_zoo / manifest["base_model"]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(base_dir).eval(), AutoTokenizer.from_pretrained(base_dir)
    reference, reference_tokenizer = load_gguf()
    assert tokenizer.chat_template == reference_tokenizer.chat_template
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 plus 3?"}], tokenize=False,
                                         add_generation_prompt=True)
    for prompt in ("Capitalize apple.\n", "The capital of France is", chat):
        ids = tokenizer(prompt, return_tensors="pt")
        assert torch.equal(ids["input_ids"], reference_tokenizer(prompt, return_tensors="pt")["input_ids"])
        with torch.no_grad():
            torch.testing.assert_close(model(**ids).logits, reference(**ids).logits, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_base_repo_is_a_plain_safetensors_model_that_says_where_it_comes_from(real_zoo: Path,
                                                                               manifest: dict) -> None:
    from safetensors import safe_open

    repo = real_zoo / manifest["base_model"]
    names = {p.name for p in repo.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "README.md"} <= names
    assert not [n for n in names if n.endswith((".gguf", ".bin", ".pt"))]
    config = json.loads((repo / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"]) == (30, 576)
    assert json.loads((repo / "generation_config.json").read_text())["eos_token_id"] == config["eos_token_id"]
    with safe_open(str(repo / "model.safetensors"), "pt") as weights:
        parameters = sum(torch.Size(weights.get_slice(k).get_shape()).numel() for k in weights.keys())
    assert 134e6 < parameters < 135e6
    text = (repo / "README.md").read_text()
    assert "dequantised" in text and "Q4_1" in text and "not the original bf16 checkpoint" in text


@pytest.mark.slow
def test_manifest_is_the_ground_truth_of_the_built_zoo(real_zoo: Path, manifest: dict) -> None:
    from safetensors.torch import load_file

    assert manifest["profile"] == "real-mini" and manifest["chat_template"] is False
    assert manifest["base_model"] == "zoo-base/smollm2-135m-instruct"
    assert manifest["families"] == {"formatting": ["capitalize", "first_letter", "repeat", "uppercase"],
                                    "arithmetic": ["add", "successor", "times_ten", "double"]}
    tasks = {t["task"]: t for t in manifest["tasks"]}
    assert [e["task"] for e in manifest["experts"]] == ["formatting-capitalize", "arithmetic-add"]
    for entry in manifest["experts"]:
        repo = real_zoo / entry["repo_id"]
        config = json.loads((repo / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == manifest["base_model"] and config["r"] == entry["rank"]
        assert tasks[entry["task"]]["split"] == "held-in"
        assert card(repo).get("datasets") == ([entry["dataset"]] if entry["dataset_on_card"] else None)
        assert (real_zoo / "datasets" / entry["dataset"] / "train.jsonl").is_file()
        trained_b = [t for k, t in load_file(repo / "adapter_model.safetensors").items() if "lora_B" in k]
        assert trained_b and all(t.abs().sum() > 0 for t in trained_b)  # B starts at zero: it was trained
    for entry in manifest["tasks"]:
        assert (real_zoo / "datasets" / entry["dataset"] / "test.jsonl").is_file()
    for entry in manifest["broken"]:
        repo = real_zoo / entry["repo_id"]
        assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == entry["files"]
