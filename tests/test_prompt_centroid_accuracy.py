"""A per-example router's decisions are recorded once per prefill (which experts, per example) and scored per
example: the share of examples whose top expert is labelled with the example's task / skill / family, with
prompts it fell back on counted apart; per-token routers get no per-example score."""

from __future__ import annotations

from pathlib import Path

import torch
from lora_testing import tiny_llama
from test_routing import expert_dirs  # noqa: F401  (fixture)
from test_routing_prompt_centroid import library, prompts, tokenizer  # noqa: F401  (fixture)

from zoo.eval.routing_accuracy import routing_score
from zoo.eval.suite import EvalExample
from zoo.library import MemberSource, build_library

LABELS = [{"task": f"t{i}", "skill": f"s{i}", "family": f"f{i // 2}"} for i in range(3)]  # e0, e1 share family f0


def task_examples(family: int, target: str = "xyzzyxzyxzyzxyzzyx") -> list[EvalExample]:
    """Prompts of ``family``, with long targets of family 2's characters: only the prompt may decide."""
    return [EvalExample(p, target, f"t{family}", "held-in", f"s{family}", f"f{family // 2}")
            for p in prompts(family, 6, 40 + family)]


@torch.no_grad()
def test_decisions_are_recorded_once_per_prefill_as_applied(expert_dirs, tokenizer):  # noqa: F811
    model = tiny_llama().eval()
    handle = library(expert_dirs, tokenizer, top_k=2).route(model)
    enc = tokenizer([prompts(2, 1, 9)[0], prompts(0, 1, 9)[0], "!?.!?.!?"], return_tensors="pt", padding=True)
    with handle.recording() as recorder:
        model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert len(recorder.examples) == 1  # the decode steps keep the prefill's decision
    decision = recorder.examples[0]
    spread = torch.zeros(3, 3).scatter(1, decision.experts, decision.weights)
    assert spread[:2].argmax(1).tolist() == [2, 0] and decision.fallback.tolist() == [False, False, True]
    applied = recorder.records["model.layers.1.self_attn.q_proj"][-1]  # the last decode step, every example
    assert torch.equal(applied.experts[:, -1], decision.experts)
    torch.testing.assert_close(applied.weights[:, -1], decision.weights.float())


@torch.no_grad()
def test_each_examples_top_expert_is_scored_against_its_task_skill_and_family(expert_dirs, tokenizer):  # noqa: F811
    model = tiny_llama().eval()
    lib = library(expert_dirs, tokenizer, top_k=2)
    handle = lib.route(model)
    for family in range(3):
        score = routing_score(model, handle, tokenizer, task_examples(family), LABELS, batch_size=4)
        assert (score.example_task, score.example_skill, score.example_family, score.example_fallback) == (1, 1, 1, 0)
    swapped = [LABELS[1], LABELS[0], LABELS[2]]  # e0 and e1 trade tasks and skills but share their family
    score = routing_score(model, handle, tokenizer, task_examples(0), swapped)
    assert (score.example_task, score.example_skill, score.example_family) == (0, 0, 1)
    unfamiliar = [EvalExample(p, "ab", "t0", "held-in", "s0", "f0") for p in ("!?.!?.!?", "?!?!?!..", "..!!??..")]
    score = routing_score(model, handle, tokenizer, unfamiliar, LABELS)
    assert (score.example_skill, score.example_fallback) == (0, 1)  # falling back is choosing no expert
    unknown = [EvalExample(p, "ab", "held-out-task", "held-out") for p in prompts(0, 2, 3)]
    score = routing_score(model, handle, tokenizer, unknown, LABELS)
    assert (score.example_task, score.example_skill, score.example_family, score.example_fallback) == \
        (None, None, None, 0)


@torch.no_grad()
def test_a_per_token_router_gets_no_per_example_score(expert_dirs, tokenizer):  # noqa: F811
    model = tiny_llama().eval()
    sources = [MemberSource(Path(d), name=f"org/e{i}") for i, d in enumerate(expert_dirs)]
    handle = build_library(sources, base_model="tiny", router="arrow", settings={"top_k": 2}).route(model)
    score = routing_score(model, handle, tokenizer, task_examples(0), LABELS)
    assert score.skill is not None and score.example_skill is None and score.example_fallback is None
    assert not handle.recorder.examples
