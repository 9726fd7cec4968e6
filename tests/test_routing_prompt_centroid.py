"""Prompt-centroid routing on a tiny Llama with three PEFT experts whose training prompts come from three
character families: it retrieves the right expert, one expert is that expert's plain LoRA, k = E is the
dense per-example mixture (the task-arithmetic merge with that example's weights), the decision made at
prefill holds through ``generate``, unfamiliar prompts get the uniform mixture, and a saved library routes
the same."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from lora_testing import tiny_gpt2, tiny_llama
from test_routing import EXPERT_CONFIGS, expert_dirs, experts, peft_model  # noqa: F401  (fixtures)
from transformers import AutoTokenizer

from zoo.adapters.fold import folded
from zoo.demozoo.tokenizer import build_tokenizer, save_tokenizer
from zoo.library import MemberSource, build_library, load_library, save_library
from zoo.merge import merge
from zoo.routing import get_router, router_config
from zoo.routing.prompt_centroid import EMBEDDED, LEFT_OUT, prompt_embeddings

FAMILIES = ("ab", "0123", "xyz")


def prompts(family: int, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(FAMILIES[family]) for _ in range(rng.randint(4, 9))) for _ in range(n)]


class Data:
    """The members' training prompts and the base model, as a router's fit reads them."""

    def __init__(self, tokenizer, with_data: set[int]) -> None:
        self.tokenizer, self.with_data = tokenizer, with_data

    def examples(self, member: int) -> list[tuple[str, str]]:
        return [(p, "t") for p in prompts(member, 24, member)] if member in self.with_data else []

    def base_model(self):
        return tiny_llama().eval(), self.tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(build_tokenizer(["".join(FAMILIES) + "!?."]), folder, 64)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"  # as generation pads
    return tok


def library(expert_dirs, tokenizer, members=(0, 1, 2), with_data=(0, 1, 2), **settings):  # noqa: F811
    sources = [MemberSource(Path(expert_dirs[i]), name=f"org/e{i}") for i in members]
    data = Data(tokenizer, {members.index(i) for i in with_data if i in members})
    return build_library(sources, base_model="tiny", router="prompt_centroid",
                         settings={"layer": 2, "top_k": 1, **settings}, data=data)


def decide(lib, tokenizer, texts):
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    config = router_config("prompt_centroid", lib.manifest.settings)
    return get_router("prompt_centroid").decide(tiny_llama().eval(), enc["input_ids"], enc["attention_mask"],
                                                lib.state, config), enc


@torch.no_grad()
def test_fresh_prompts_are_retrieved_to_the_expert_of_their_family(expert_dirs, tokenizer):  # noqa: F811
    lib = library(expert_dirs, tokenizer)
    assert [m.routed_by for m in lib.manifest.members] == [EMBEDDED] * 3
    texts = [p for family in range(3) for p in prompts(family, 8, 100 + family)]
    decision, _ = decide(lib, tokenizer, texts)
    assert decision.experts.shape == (24, 1)
    assert decision.experts[:, 0].tolist() == [f for f in range(3) for _ in range(8)]
    torch.testing.assert_close(decision.weights, torch.ones(24, 1))


@torch.no_grad()
def test_one_expert_is_exactly_that_experts_lora(expert_dirs, tokenizer):  # noqa: F811
    lib = library(expert_dirs, tokenizer, members=(1,), with_data=(1,))
    enc = tokenizer(prompts(1, 3, 7) + ["!?!?"], return_tensors="pt", padding=True)
    model = tiny_llama().eval()
    lib.route(model)
    expected = peft_model(1)(**enc).logits
    torch.testing.assert_close(model(**enc).logits, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_k_over_all_experts_is_each_examples_own_merge(expert_dirs, experts, tokenizer):  # noqa: F811
    lib = library(expert_dirs, tokenizer, top_k=3, beta=0.05, fallback=False)
    texts = [prompts(0, 1, 5)[0], prompts(2, 1, 6)[0], "ab01xy"]
    decision, enc = decide(lib, tokenizer, texts)
    assert decision.experts.shape == (3, 3) and not torch.allclose(decision.weights[0], decision.weights[1])
    model = tiny_llama().eval()
    handle = lib.route(model)
    routed = model(**enc).logits
    handle.remove()
    for row in range(3):
        weights = torch.zeros(3).scatter(0, decision.experts[row], decision.weights[row])
        with folded(model, merge(experts, "task_arithmetic", weights=weights.tolist())):
            expected = model(input_ids=enc["input_ids"][row:row + 1], attention_mask=enc["attention_mask"][row:row + 1])
        torch.testing.assert_close(routed[row:row + 1], expected.logits, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_the_prefill_decision_holds_through_generate(expert_dirs, tokenizer):  # noqa: F811
    lib = library(expert_dirs, tokenizer)
    enc = tokenizer([prompts(2, 1, 9)[0], prompts(0, 1, 9)[0]], return_tensors="pt", padding=True)
    model = tiny_llama().eval()
    handle = lib.route(model)
    with handle.recording() as recorder:
        model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=0)
    q0 = recorder.records["model.layers.0.self_attn.q_proj"]
    assert len(q0) == 5
    assert all(torch.equal(r.experts[:, -1, 0], torch.tensor([2, 0])) for r in q0)


@pytest.mark.parametrize("top_k", [1, 2, 3])
@torch.no_grad()
def test_decode_steps_reuse_what_the_decision_prepared_once_and_match_each_examples_merge(expert_dirs, experts,  # noqa: F811
                                                                                           tokenizer, top_k):
    """3 examples over 3 experts. k = 1: each example's gathered factors (3 x 1, no more than the 3 stacked) are
    kept from the prefill on; k = 2 (6 > 3): the decode steps' pairs are prepared at the first step and kept;
    k = 3 (every expert): the stack as it is, with each example's weights over it made once."""
    lib = library(expert_dirs, tokenizer, top_k=top_k, beta=0.05, fallback=False)
    enc = tokenizer([prompts(0, 1, 5)[0], prompts(2, 1, 6)[0], "ab01xy"], return_tensors="pt", padding=True)
    model = tiny_llama().eval()
    handle = lib.route(model)
    layer = handle.layers["model.layers.0.self_attn.q_proj"]
    held = []
    hook = layer.register_forward_hook(lambda *_: held.append(
        (layer._hold, *(getattr(layer._hold, what, None) for what in ("pairs", "factors", "mix")))))
    out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=0, output_scores=True,
                         return_dict_in_generate=True)
    hook.remove()
    decision = handle.state.decision
    handle.remove()
    # the router's own look at the base (routing off), the prefill, then 3 decode steps on what was prepared once
    assert len(held) == 5 and held[0][0] is None and held[1][0].decision is decision
    assert all(h[0] is held[1][0] for h in held[2:])
    kept = {1: 2, 2: 1, 3: 3}[top_k]  # factors from the prefill on; pairs from the first decode step; mix
    first = 2 if top_k == 2 else 1
    assert held[first][kept] is not None and all(h[kept] is held[first][kept] for h in held[first:])
    assert all(h[i] is None for h in held[1:] for i in (1, 2, 3) if i != kept)
    for row in range(3):
        weights = torch.zeros(3).scatter(0, decision.experts[row], decision.weights[row])
        with folded(model, merge(experts, "task_arithmetic", weights=weights.tolist())):
            alone = model.generate(input_ids=enc["input_ids"][row:row + 1],
                                   attention_mask=enc["attention_mask"][row:row + 1], max_new_tokens=4,
                                   do_sample=False, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
        for routed, expected in zip(out.scores, alone.scores, strict=True):
            torch.testing.assert_close(routed[row:row + 1], expected, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_unfamiliar_prompts_get_the_uniform_mixture_and_experts_without_data_are_left_out(expert_dirs, tokenizer):  # noqa: F811
    lib = library(expert_dirs, tokenizer, with_data=(0, 2))
    assert [m.routed_by for m in lib.manifest.members] == [EMBEDDED, LEFT_OUT, EMBEDDED]
    decision, _ = decide(lib, tokenizer, ["!?.!?.!?", prompts(2, 1, 3)[0], prompts(1, 1, 3)[0]])
    assert decision.experts.shape == (3, 3)
    torch.testing.assert_close(decision.weights[0], torch.full((3,), 1 / 3))
    spread = torch.zeros(3, 3).scatter(1, decision.experts, decision.weights)
    assert spread[1].tolist() == [0.0, 0.0, 1.0]  # familiar: its own expert alone
    assert spread[2, 1] == 0 or torch.allclose(spread[2], torch.full((3,), 1 / 3))  # member 1 is never retrieved


@torch.no_grad()
def test_a_saved_library_routes_the_same(expert_dirs, tokenizer, tmp_path):  # noqa: F811
    lib = library(expert_dirs, tokenizer, top_k=2)
    reloaded = load_library(save_library(lib, tmp_path / "lib"))
    assert set(reloaded.state) == set(lib.state)
    enc = tokenizer(prompts(0, 2, 3) + prompts(1, 2, 4), return_tensors="pt", padding=True)
    outputs = []
    for candidate in (lib, reloaded):
        model = tiny_llama().eval()
        candidate.route(model)
        outputs.append(model(**enc).logits)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


@torch.no_grad()
def test_a_left_padded_prompt_embeds_as_it_does_alone_also_with_absolute_positions():
    model = tiny_gpt2().eval()  # learned absolute position embeddings: padding must not shift them
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    batch = prompt_embeddings(model, ids, torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]), layer=2)
    alone = prompt_embeddings(model, ids[:1, 2:], None, layer=2)
    torch.testing.assert_close(batch[:1], alone, rtol=1e-5, atol=1e-5)
