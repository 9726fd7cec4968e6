"""The router contract admits routers that decide once per example: a toy plug-in registered for the test
shows that the runtime calls it at prefill only, keeps its decision through ``generate``'s decode steps,
and applies each example's experts to all of its tokens (for one expert: exactly that expert's LoRA)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from lora_testing import tiny_llama
from test_routing import EXPERT_CONFIGS, expert_dirs, experts, peft_model  # noqa: F401  (fixtures)

from zoo.routing import ROUTERS, ExampleDecision, Fitted, Router, arrow_routing_vectors, register_router, route_model


@dataclass(frozen=True)
class FirstTokenConfig:
    top_k: int = 1


class FirstTokenRouter(Router):
    """Member ``first token id % E`` for the whole example; counts its decisions."""

    name = "first-token-test"
    reference = "a test"
    config_class = FirstTokenConfig
    per_example = True

    def __init__(self) -> None:
        self.calls: list[int] = []

    def fit(self, adapters, config, fit_config, data) -> Fitted:
        return Fitted(arrow_routing_vectors(adapters), ["first-token"] * len(adapters),
                      {"size": torch.tensor(len(adapters))})

    def decide(self, model, input_ids, attention_mask, state, config) -> ExampleDecision:
        self.calls.append(input_ids.shape[1])
        return ExampleDecision(input_ids[:, :1] % state["size"], torch.ones(input_ids.shape[0], 1))


@pytest.fixture
def first_token() -> Iterator[FirstTokenRouter]:
    router = register_router(FirstTokenRouter())
    yield router
    ROUTERS.pop(router.name)


@torch.no_grad()
def test_each_example_gets_exactly_its_experts_lora(experts, first_token):  # noqa: F811
    ids = torch.tensor([[3, 5, 7, 9], [4, 8, 1, 2], [5, 6, 3, 3]])  # first tokens choose experts 0, 1, 2
    model = tiny_llama().eval()
    fitted = first_token.fit(experts, None, None, None)
    route_model(model, experts, fitted.routing, first_token.name, state=fitted.state)
    routed = model(input_ids=ids).logits
    for row, expert in enumerate([0, 1, 2]):
        expected = peft_model(expert)(input_ids=ids[row:row + 1]).logits
        torch.testing.assert_close(routed[row:row + 1], expected, rtol=1e-5, atol=1e-5)
    assert first_token.calls == [4]


@torch.no_grad()
def test_the_decision_made_at_prefill_holds_through_generate(experts, first_token):  # noqa: F811
    ids = torch.tensor([[4, 5, 7], [3, 8, 1]])
    model = tiny_llama().eval()
    fitted = first_token.fit(experts, None, None, None)
    handle = route_model(model, experts, fitted.routing, first_token.name, state=fitted.state)
    with handle.recording() as recorder:
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                             pad_token_id=0)
    assert out.shape == (2, 7)
    assert first_token.calls == [3]  # once, at prefill; the four decode steps kept it
    q0 = recorder.records["model.layers.0.self_attn.q_proj"]
    assert [tuple(r.experts.shape) for r in q0] == [(2, 3, 1), (2, 1, 1), (2, 1, 1), (2, 1, 1)]
    assert all(torch.equal(r.experts[:, -1, 0], torch.tensor([1, 0])) for r in q0)
    # a plain forward is a new prefill: the router decides again
    model(input_ids=ids[:, :2])
    assert first_token.calls == [3, 2]
    handle.remove()
    model(input_ids=ids)
    assert first_token.calls == [3, 2]  # removed: no more decisions
