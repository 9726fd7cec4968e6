"""The teacher-forced passes (target NLL, routing accuracy) route a per-example router on the prompt alone:
the decision in the NLL pass is the one ``generate`` takes at prefill for the same prompt, the NLL is that
of the merged model of the chosen experts, and declaring the prompt changes nothing for a plain model or a
per-token router."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lora_testing import tiny_llama
from test_routing import expert_dirs, experts  # noqa: F401  (fixtures)
from test_routing_prompt_centroid import library, prompts, tokenizer  # noqa: F401  (fixture)

from zoo.adapters.fold import folded
from zoo.eval.generation import greedy_completions
from zoo.eval.scoring import prompt_mask, target_nll
from zoo.eval.text import collate, encode_pair
from zoo.library import MemberSource, build_library
from zoo.merge import merge
from zoo.routing.prompt import prompt_only, prompt_positions


def peeking_examples() -> list[dict[str, str]]:
    """Short prompts of one family whose long targets come from another: a router that embedded the target
    too would pick the target's expert."""
    return [{"prompt": p, "target": t} for p, t in zip(prompts(0, 2, 11) + prompts(1, 2, 12),
                                                         ["xyzzyxzyxzyzxyzzyxzyxxyz", "zyxxzy" * 4,
                                                          "abba" * 6, "xyzyx" * 5], strict=True)]


def spread(decision, members: int) -> torch.Tensor:
    """Each example's weights over every library member, ``(B, members)``."""
    return torch.zeros(decision.experts.shape[0], members).scatter(1, decision.experts, decision.weights)


@torch.no_grad()
def test_the_nll_pass_routes_as_generation_prefill_and_scores_the_chosen_experts_merge(expert_dirs, experts,  # noqa: F811
                                                                                       tokenizer):  # noqa: F811
    lib = library(expert_dirs, tokenizer, top_k=2, beta=0.05, fallback=False)
    examples = peeking_examples()
    model = tiny_llama().eval()
    handle = lib.route(model)
    routed_nll = target_nll(model, tokenizer, examples)
    in_nll_pass = spread(handle.state.decision, 3)
    greedy_completions(model, tokenizer, [e["prompt"] for e in examples], max_new_tokens=2)
    at_prefill = spread(handle.state.decision, 3)
    handle.remove()
    assert in_nll_pass.argmax(1).tolist() == [0, 0, 1, 1]  # the prompt's family, not the target's
    torch.testing.assert_close(in_nll_pass, at_prefill, rtol=1e-4, atol=1e-5)
    for example, weights, nll in zip(examples, in_nll_pass, routed_nll, strict=True):
        with folded(model, merge(experts, "task_arithmetic", weights=weights.tolist())):
            expected = target_nll(model, tokenizer, [example])[0]
        assert nll == pytest.approx(expected, rel=1e-4)


@torch.no_grad()
def test_declaring_the_prompt_changes_nothing_for_a_plain_model_or_a_per_token_router(expert_dirs, tokenizer):  # noqa: F811
    pairs = [encode_pair(tokenizer, e["prompt"], e["target"]) for e in peeking_examples()]
    batch = collate(pairs, tokenizer.pad_token_id)
    model = tiny_llama().eval()
    sources = [MemberSource(Path(d), name=f"org/e{i}") for i, d in enumerate(expert_dirs)]
    arrow = build_library(sources, base_model="tiny", router="arrow", settings={"top_k": 2})
    for handle in (None, arrow.route(model)):
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with prompt_positions(prompt_mask(batch)):
            declared = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(declared, plain, rtol=0, atol=0)
    assert handle is not None and handle.state.decision is None


def test_the_declared_prompt_cuts_the_inputs_to_the_prompts_and_must_fit_them():
    ids = torch.arange(12).reshape(2, 6)
    attention = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]])
    prompt = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert prompt_only(ids, attention) == (ids, attention)
    with prompt_positions(prompt):
        cut_ids, cut_mask = prompt_only(ids, attention)
        assert cut_ids.tolist() == [[0, 1, 2], [6, 7, 8]] and cut_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
        with pytest.raises(ValueError, match="declared for inputs of shape"):
            prompt_only(ids[:, :4], attention[:, :4])
