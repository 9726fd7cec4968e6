"""PHATGOOSE gate training: only gates change, the loss falls, experts trained together train as if alone."""

from __future__ import annotations

import pytest
import torch
from lora_testing import tiny_llama
from test_routing import expert_dirs, experts, peft_model, tokens  # noqa: F401 (fixtures)

from zoo.library import MemberSource, build_library
from zoo.routing import GateTrainingConfig, train_phatgoose_gates
from zoo.routing.arrow import PROTOTYPE
from zoo.routing.phatgoose import GATE, gated_routing
from zoo.routing.phatgoose.train import GatedExpertsLinear


@pytest.fixture(scope="module")
def teacher_data() -> dict[int, list[tuple[list[int], int]]]:
    """Each expert's own data: greedy continuations of the full-strength expert (sigmoid(gate) -> 1 fits best)."""
    data = {}
    for e in (0, 1):
        prompts = tokens(batch=12, seq=4, seed=20 + e)
        with torch.no_grad():
            out = peft_model(e).generate(input_ids=prompts, attention_mask=torch.ones_like(prompts),
                                         max_new_tokens=6, do_sample=False, pad_token_id=0)
        data[e] = [(row.tolist(), 4) for row in out]
    return data


def test_gate_training_changes_only_gates_and_lowers_the_loss(experts, teacher_data):  # noqa: F811
    model = tiny_llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    factors = [{n: (f.A.clone(), f.B.clone()) for n, f in a.modules.items()} for a in experts]
    result = train_phatgoose_gates(model, experts, teacher_data, pad_id=0,
                                   config=GateTrainingConfig(steps=15, lr=5e-2, examples_per_expert=12))  # full batch
    assert set(result.gates) == {0, 1}  # expert 2 has no data: no gates
    assert all(set(result.gates[e]) == set(experts[e].modules) for e in (0, 1))
    assert all(g.shape == (experts[e].modules[n].d_in,) and g.abs().sum() > 0
               for e in (0, 1) for n, g in result.gates[e].items())
    assert result.losses[-1] < result.losses[0] - 0.02, result.losses
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert not any(isinstance(m, GatedExpertsLinear) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    for adapter, saved in zip(experts, factors, strict=True):
        assert all(torch.equal(f.A, saved[n][0]) and torch.equal(f.B, saved[n][1]) for n, f in adapter.modules.items())


def test_experts_trained_together_get_the_gates_they_get_alone(experts, teacher_data):  # noqa: F811
    config = GateTrainingConfig(steps=4, lr=5e-2, examples_per_expert=3, micro_batch=4)
    together = train_phatgoose_gates(tiny_llama(), experts, teacher_data, pad_id=0, config=config)
    alone = train_phatgoose_gates(tiny_llama(), experts, {0: teacher_data[0]}, pad_id=0, config=config)
    for name, gate in alone.gates[0].items():
        torch.testing.assert_close(together.gates[0][name], gate, rtol=1e-4, atol=1e-5)


def test_trained_gates_make_a_phatgoose_library_with_arrow_fallback(experts, expert_dirs, teacher_data):  # noqa: F811
    result = train_phatgoose_gates(tiny_llama(), experts, teacher_data, pad_id=0,
                                   config=GateTrainingConfig(steps=2))
    library = build_library([MemberSource(d) for d in expert_dirs], base_model="tiny", router="phatgoose",
                            fitted=gated_routing(experts, result.gates))
    assert [m.routed_by for m in library.manifest.members] == [GATE, GATE, PROTOTYPE]
    model = tiny_llama().eval()
    handle = library.route(model)
    with torch.no_grad(), handle.recording() as recorder:
        model(input_ids=tokens())
    used = {int(e) for r in recorder.records["model.layers.0.self_attn.q_proj"] for e in r.experts.unique()}
    assert used <= {0, 1, 2} and len(used) > 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gate_training_runs_on_cuda(experts, teacher_data):  # noqa: F811
    config = GateTrainingConfig(steps=4, lr=5e-2, examples_per_expert=3)
    gpu = train_phatgoose_gates(tiny_llama().cuda(), experts, teacher_data, pad_id=0, config=config)
    cpu = train_phatgoose_gates(tiny_llama(), experts, teacher_data, pad_id=0, config=config)
    for e, gates in cpu.gates.items():
        for name, gate in gates.items():
            torch.testing.assert_close(gpu.gates[e][name], gate, rtol=1e-3, atol=1e-3)
