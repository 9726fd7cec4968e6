"""The routed runtime on the tiny demo zoo, end to end: experts fetched from the local hub, PHATGOOSE gates
trained on the experts' datasets in one pass, libraries saved, reloaded and generating."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.demozoo.tasks import read_jsonl
from zoo.demozoo.training import encode_example
from zoo.library import build_library, hub_resolver, load_library, member_from_repo, save_library
from zoo.routing import GateTrainingConfig, train_phatgoose_gates
from zoo.routing.arrow import PROTOTYPE
from zoo.routing.phatgoose import GATE, gated_routing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zoo(tiny_zoo, tiny_hub, tmp_path_factory):
    """Base model, tokenizer, the experts as library members (fetched by the hub client) and their zoo entries."""
    from huggingface_hub import HfApi
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((tiny_zoo / "zoo.json").read_text())
    base_dir = tiny_zoo / manifest["base_model"]
    entries = manifest["experts"]
    api, cache = HfApi(endpoint=str(tiny_hub)), tmp_path_factory.mktemp("hf-cache")
    members = [
        member_from_repo(e["repo_id"], api.model_info(e["repo_id"]).sha,
                         hub_resolver(endpoint=str(tiny_hub), cache_dir=cache),
                         labels={k: e[k] for k in ("task", "skill", "family")})
        for e in entries
    ]
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    return {"base_dir": base_dir, "manifest": manifest, "members": members, "entries": entries,
            "tokenizer": tokenizer, "base": lambda: AutoModelForCausalLM.from_pretrained(base_dir).eval()}


def test_gates_trained_on_the_experts_datasets_make_a_library_that_round_trips(zoo, tiny_zoo, tmp_path):
    tokenizer, entries = zoo["tokenizer"], zoo["entries"]
    data = {i: [encode_example(tokenizer, x) for x in read_jsonl(tiny_zoo / "datasets" / e["dataset"] / "train.jsonl")]
            for i, e in enumerate(entries[1:], start=1)}  # expert 0's data is "unknown": it falls back to Arrow
    base = zoo["base"]()
    library_arrow = build_library(zoo["members"], base_model=zoo["manifest"]["base_model"], router="arrow")
    experts = library_arrow.experts
    result = train_phatgoose_gates(base, experts, data, pad_id=tokenizer.pad_token_id,
                                   config=GateTrainingConfig(steps=12, lr=5e-2, examples_per_expert=2))
    assert sum(result.losses[-4:]) < sum(result.losses[:4])
    library = build_library(zoo["members"], base_model=zoo["manifest"]["base_model"], router="phatgoose",
                            fitted=gated_routing(experts, result.gates))
    assert [m.routed_by for m in library.manifest.members] == [PROTOTYPE] + [GATE] * (len(entries) - 1)

    folder = save_library(library, tmp_path / "phatgoose")
    reloaded = load_library(folder)
    prompts = [x.prompt for x in read_jsonl(tiny_zoo / "datasets" / entries[1]["dataset"] / "test.jsonl")[:4]]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    outputs = []
    for lib in (library, reloaded):
        model = zoo["base"]()
        handle = lib.route(model)
        with torch.no_grad(), handle.recording() as recorder:
            outputs.append(model.generate(**batch, max_new_tokens=4, do_sample=False,
                                          pad_token_id=tokenizer.pad_token_id))
        first = next(iter(recorder.records.values()))[0]
        assert first.experts.shape == (*batch["input_ids"].shape, 2)
    assert torch.equal(outputs[0], outputs[1])
