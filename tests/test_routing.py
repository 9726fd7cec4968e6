"""Routed runtime: equals PEFT for one expert, equals a dense all-experts reference for top-k, generates."""

from __future__ import annotations

import math

import pytest
import torch
from lora_testing import randomise_lora, tiny_llama

from zoo.adapters import load_adapter
from zoo.adapters.factors import Adapter, LoraFactors
from zoo.routing import (
    ArrowConfig,
    ExampleDecision,
    ModuleRouting,
    PhatgooseConfig,
    RoutedLinear,
    RoutingRecorder,
    RoutingState,
    StackedLora,
    arrow_routing_vectors,
    get_router,
    route_model,
    router_config,
)

# Every dispatch path of ``StackedLora.delta``, forced on CPU (where "auto" takes "loop").
DISPATCH_PATHS = ["loop", "grouped", "dense"]

# Different ranks, alphas (rsLoRA included) and module subsets, saved by real PEFT.
EXPERT_CONFIGS = [
    {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    {"r": 2, "lora_alpha": 3, "use_rslora": True, "target_modules": ["q_proj", "v_proj", "down_proj"]},
    {"r": 8, "lora_alpha": 4, "target_modules": ["q_proj", "o_proj", "up_proj"]},
]


def peft_model(index: int):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(lora_dropout=0.0, **EXPERT_CONFIGS[index]))
    randomise_lora(model, seed=100 + index)
    return model.eval()


@pytest.fixture(scope="module")
def expert_dirs(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("experts")
    dirs = []
    for i in range(len(EXPERT_CONFIGS)):
        peft_model(i).save_pretrained(root / f"e{i}")
        dirs.append(root / f"e{i}")
    return dirs


@pytest.fixture(scope="module")
def experts(expert_dirs) -> list[Adapter]:
    return [load_adapter(d) for d in expert_dirs]


def tokens(batch: int = 3, seq: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (batch, seq), generator=torch.Generator().manual_seed(seed))


def random_gates(experts: list[Adapter], seed: int) -> dict[str, ModuleRouting]:
    gen = torch.Generator().manual_seed(seed)
    return {name: ModuleRouting(entry.experts, torch.randn(entry.vectors.shape, generator=gen))
            for name, entry in arrow_routing_vectors(experts).items()}


@torch.no_grad()
@pytest.mark.parametrize("router", ["arrow", "phatgoose"])
def test_one_expert_library_equals_the_peft_model(experts, router):
    ids = tokens()
    expected = peft_model(0)(input_ids=ids).logits
    model = tiny_llama().eval()
    vectors = arrow_routing_vectors(experts[:1]) if router == "arrow" else random_gates(experts[:1], 0)
    route_model(model, experts[:1], vectors, router)
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_weights_sum_to_one_so_a_duplicated_expert_equals_the_peft_model(experts):
    """k = 2 over two copies of one expert: whatever the split, the mass on that expert is exactly 1."""
    ids = tokens()
    expected = peft_model(1)(input_ids=ids).logits
    model = tiny_llama().eval()
    pair = [experts[1], experts[1]]
    route_model(model, pair, arrow_routing_vectors(pair), "arrow", {"top_k": 2})
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


def dense_reference(h: torch.Tensor, factors: list[LoraFactors], vectors: torch.Tensor, router: str, config,
                    sign_free: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, mixed by the top-k softmax weights: ``h: (n, d_in) -> (n, d_out)``."""
    if router == "arrow":
        logits = arrow_reference_logits(h, vectors, config)
    else:
        def std(x):
            return (x - x.mean(-1, keepdim=True)) / x.std(-1, unbiased=False, keepdim=True)
        logits = std(h) @ std(vectors).T / math.sqrt(h.shape[-1])
        logits = torch.where(sign_free, logits.abs(), logits)
    k = min(config.top_k, len(factors))
    kept = logits.topk(k, dim=-1)
    weights = torch.zeros_like(logits).scatter(1, kept.indices, kept.values.softmax(-1))
    every = torch.stack([h @ f.A.T @ f.B.T for f in factors])  # (E, n, d_out)
    return torch.einsum("ne,end->nd", weights, every)


def arrow_reference_logits(h: torch.Tensor, vectors: torch.Tensor, config: ArrowConfig) -> torch.Tensor:
    """Arrow's scores with the data-free variants applied to the *tokens*, as their definitions read
    (the router applies them to the prototypes once, which must give the same scores)."""
    if config.centre == "features":
        h = h - h.mean(-1, keepdim=True)
    scale = torch.ones(vectors.shape[0])
    if config.centre == "prototypes" and vectors.shape[0] >= 3:
        u = torch.linalg.svd(vectors.double()).Vh[0].float()  # the prototypes' shared direction, sign-free
        projected = h - torch.outer(h @ u, u)
        scale = (vectors - torch.outer(vectors @ u, u)).norm(dim=-1)  # the prototypes are renormalised
        logits = (projected @ vectors.T).abs() / scale
    else:
        logits = (h @ vectors.T).abs()
    if config.normalise:
        logits = logits / h.norm(dim=-1, keepdim=True)
    return logits / config.temperature


def notes(router: str, fallbacks: set[int], n: int = 3) -> list[str]:
    """Each member's ``routed_by``: PHATGOOSE members in ``fallbacks`` kept their Arrow prototype."""
    from zoo.routing.arrow import PROTOTYPE
    from zoo.routing.phatgoose import GATE

    return [PROTOTYPE if router == "arrow" or i in fallbacks else GATE for i in range(n)]


def reference_model(experts, routing, router, config, sign_free):
    """The base model with forward hooks adding the dense mixture: the same maths, no dispatch."""
    model = tiny_llama().eval()
    for name, entry in routing.items():
        factors = [experts[e].modules[name] for e in entry.experts]
        flags = torch.tensor([e in sign_free for e in entry.experts])

        def hook(module, inputs, out, factors=factors, vectors=entry.vectors, flags=flags):
            h = inputs[0].reshape(-1, inputs[0].shape[-1])
            return out + dense_reference(h, factors, vectors, router, config, flags).reshape(out.shape)

        model.get_submodule(name).register_forward_hook(hook)
    return model


@pytest.fixture(params=DISPATCH_PATHS)
def dispatch_path(request, monkeypatch) -> str:
    """Run the test once per dispatch path, forced for every ``StackedLora``."""
    monkeypatch.setattr(StackedLora, "path", request.param)
    return request.param


@torch.no_grad()
@pytest.mark.parametrize(("router", "config"), [
    ("arrow", ArrowConfig(top_k=1)),
    ("arrow", ArrowConfig(top_k=2, temperature=0.5)),
    ("arrow", ArrowConfig(top_k=8)),
    ("arrow", ArrowConfig(top_k=2, centre="features")),
    ("arrow", ArrowConfig(top_k=1, centre="prototypes")),
    ("arrow", ArrowConfig(top_k=2, temperature=0.5, centre="prototypes", normalise=True)),
    ("phatgoose", PhatgooseConfig(top_k=2)),
    ("phatgoose", PhatgooseConfig(top_k=1)),
])
def test_top_k_dispatch_equals_the_dense_all_experts_reference(experts, router, config, dispatch_path):
    routing = arrow_routing_vectors(experts) if router == "arrow" else random_gates(experts, 1)
    sign_free = {0, 1, 2} if router == "arrow" else {2}  # PHATGOOSE: expert 2 fell back to its prototype
    ids = tokens(seed=3)
    expected = reference_model(experts, routing, router, config, sign_free)(input_ids=ids).logits
    model = tiny_llama().eval()
    handle = route_model(model, experts, routing, router, config, routed_by=notes(router, {2}))
    assert set(handle.layers) == set(routing) and len(handle.layers) == 2 * 5  # q, v, o, up, down per layer
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_under_autocast_the_routed_output_takes_the_base_outputs_dtype(experts, dispatch_path):
    """The experts' output is added into the base output in place, unless autocast gave that another dtype."""
    ids = tokens(seed=4)
    model = tiny_llama().eval()
    route_model(model, experts, arrow_routing_vectors(experts), "arrow", {"top_k": 2})
    full = model(input_ids=ids).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = model(input_ids=ids).logits
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, rtol=0.1, atol=0.1)


@torch.no_grad()
@pytest.mark.parametrize("path", ["loop", "grouped"])  # "dense" runs every expert by design (dispatch.py)
def test_only_the_chosen_experts_are_computed(path, monkeypatch):
    """An expert whose factors are NaN but which is never chosen leaves the output finite."""
    monkeypatch.setattr(StackedLora, "path", path)
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.Linear(8, 12)
    good = [LoraFactors(torch.randn(2, 8, generator=gen), torch.randn(12, 2, generator=gen)) for _ in range(2)]
    poisoned = LoraFactors(torch.full((3, 8), float("nan")), torch.full((12, 3), float("nan")))
    vectors = torch.stack([torch.randn(8, generator=gen), torch.randn(8, generator=gen), torch.zeros(8)])
    scorer = get_router("arrow").scorer(vectors, [], ArrowConfig(top_k=2))
    layer = RoutedLinear("m", base, [*good, poisoned], [0, 1, 2], scorer, 2, RoutingRecorder(), RoutingState(), 3)
    out = layer(torch.randn(4, 9, 8, generator=gen))
    assert out.shape == (4, 9, 12) and torch.isfinite(out).all()


def pairs_reference(h, factors, token, expert, weight):
    """``sum_p weight_p B_e A_e h[token_p]``, one pair at a time (float64, no dispatch)."""
    out = torch.zeros(h.shape[0], factors[0].d_out, dtype=torch.float64)
    for t, e, w in zip(token.tolist(), expert.tolist(), weight.double(), strict=True):
        f = factors[e]
        out[t] += w * (f.B.double() @ (f.A.double() @ h[t].double()))
    return out


@pytest.mark.parametrize("path", DISPATCH_PATHS)
def test_every_dispatch_path_equals_the_pairwise_reference_with_gradients(path):
    """Experts of ranks 3, 16, 1 and 8 (padded to 16); an expert with no pairs; uneven pair counts, a token
    with no pair and a repeated (token, expert) pair: value and gradients in ``h`` and ``weight``."""
    gen = torch.Generator().manual_seed(11)
    d_in, d_out, n = 16, 24, 9
    factors = [LoraFactors(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen))
               for r in (3, 16, 1, 8, 5)]
    token = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 7, 0])  # token 8 has none
    expert = torch.tensor([1, 3, 0, 1, 0, 1, 3, 1, 3, 1, 0, 1, 2, 1])  # expert 4 has none; (0, 1) twice
    weight = torch.rand(token.shape[0], generator=gen)
    h = torch.randn(n, d_in, generator=gen)
    lora = StackedLora(factors, "cpu", torch.float32)
    lora.path = path
    assert lora.resolved_path() == path and lora.a_pad.shape == (5, 16, d_in)
    h_ = h.clone().requires_grad_()
    w_ = weight.clone().requires_grad_()
    out = lora.delta(h_, token, expert, w_)
    h_ref = h.double().requires_grad_()
    w_ref = weight.double().requires_grad_()
    expected = pairs_reference(h_ref, factors, token, expert, w_ref)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[8], torch.zeros(d_out))
    probe = torch.randn(n, d_out, generator=gen)
    (out * probe).sum().backward()
    (expected * probe.double()).sum().backward()
    torch.testing.assert_close(h_.grad.double(), h_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w_.grad.double(), w_ref.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", DISPATCH_PATHS)
def test_every_dispatch_path_adds_a_row_of_choices_per_token_into_out_with_gradients(path):
    """What the routed layer calls: pairs given as ``(n, k)`` choices (token implicit), added in place into the
    base output, which keeps its own gradient."""
    gen = torch.Generator().manual_seed(13)
    d_in, d_out, n, k = 16, 24, 7, 2
    factors = [LoraFactors(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen))
               for r in (3, 16, 1, 8)]
    chosen = torch.stack([torch.randperm(len(factors), generator=gen)[:k] for _ in range(n)])
    chosen[:, 0] = torch.where(chosen[:, 1] == 3, chosen[:, 0], 3)  # expert 3 in every row...
    chosen[0] = torch.tensor([1, 0])  # ...but the first; expert 2 may appear in none
    h, weight, base = torch.randn(n, d_in, generator=gen), torch.rand(n, k, generator=gen), torch.randn(n, d_out)
    lora = StackedLora(factors, "cpu", torch.float32)
    lora.path = path
    h_, w_, base_ = (t.clone().requires_grad_() for t in (h, weight, base))
    out = base_ * 1  # a non-leaf, like a linear layer's output
    result = lora.delta(h_, k, chosen.reshape(-1), w_.reshape(-1), out=out)
    assert result is out
    h_ref, w_ref, base_ref = (t.double().requires_grad_() for t in (h, weight, base))
    token = torch.arange(n).repeat_interleave(k)
    expected = base_ref + pairs_reference(h_ref, factors, token, chosen.reshape(-1), w_ref.reshape(-1))
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-5)
    probe = torch.randn(n, d_out, generator=gen)
    (result * probe).sum().backward()
    (expected * probe.double()).sum().backward()
    for ours, ref in ((h_, h_ref), (w_, w_ref), (base_, base_ref)):
        torch.testing.assert_close(ours.grad.double(), ref.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("path", DISPATCH_PATHS)
def test_pairs_prepared_once_apply_to_new_inputs_as_the_pairwise_reference(path, compact):
    """What a held per-example decision does at each decode step: the same pairs, prepared once, applied to new
    token states; compacted (grouped path) to copies of just the used experts (2 of 5: experts 1 and 3)."""
    gen = torch.Generator().manual_seed(19)
    d_in, d_out, n, k = 16, 24, 4, 2
    factors = [LoraFactors(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen))
               for r in (3, 16, 1, 8, 5)]
    chosen, weight = torch.tensor([[3, 1], [1, 3], [3, 1], [1, 3]]), torch.rand(n, k, generator=gen)
    lora = StackedLora(factors, "cpu", torch.float32)
    lora.path = path
    pairs = lora.prepare(n, k, chosen.reshape(-1), weight.reshape(-1), compact=compact)
    assert (pairs.a is not None) == (compact and path == "grouped")
    if pairs.a is not None:
        assert torch.equal(pairs.a, lora.a_pad[[1, 3]]) and torch.equal(pairs.bt, lora.bt_pad[[1, 3]])
    token = torch.arange(n).repeat_interleave(k)
    for _ in range(2):
        h = torch.randn(n, d_in, generator=gen)
        expected = pairs_reference(h, factors, token, chosen.reshape(-1), weight.reshape(-1))
        torch.testing.assert_close(lora.apply(h, pairs).double(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prepared for 4 tokens"):
        lora.apply(torch.randn(5, d_in), pairs)


def test_a_per_example_mixture_over_the_stack_is_the_pairwise_reference():
    """``mixture_delta``: every token of example b through every expert weighted by ``mix[b]`` (zeros for the
    experts it did not choose; one example with the uniform mixture), added into ``out``."""
    gen = torch.Generator().manual_seed(23)
    d_in, d_out, batch, tokens = 16, 24, 3, 5
    factors = [LoraFactors(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen))
               for r in (3, 16, 1, 8)]
    mix = torch.tensor([[0.0, 0.7, 0.0, 0.3], [0.25] * 4, [1.0, 0.0, 0.0, 0.0]])
    h, base = torch.randn(batch, tokens, d_in, generator=gen), torch.randn(batch, tokens, d_out, generator=gen)
    result = StackedLora(factors, "cpu", torch.float32).mixture_delta(h, mix, out=base.clone())
    experts = torch.arange(4).repeat(batch * tokens)
    pairs = pairs_reference(h.reshape(-1, d_in), factors, torch.arange(batch * tokens).repeat_interleave(4), experts,
                            mix.repeat_interleave(tokens, 0).reshape(-1))
    torch.testing.assert_close(result.double(), base.double() + pairs.reshape(batch, tokens, d_out),
                               rtol=1e-5, atol=1e-5)


def test_a_per_example_choice_is_dispatched_as_the_pairwise_reference_with_gradients():
    """``example_delta``: every token of an example through the example's k experts (ranks 3-16, padded), its
    weights shared by its tokens, added into the base output: values and gradients in ``h``, the weights
    and the output, against one (token, expert) pair at a time."""
    gen = torch.Generator().manual_seed(17)
    d_in, d_out, batch, tokens, k = 16, 24, 3, 5, 2
    factors = [LoraFactors(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen))
               for r in (3, 16, 1, 8)]
    chosen = torch.tensor([[1, 3], [0, 1], [3, 2]])
    h, weight = torch.randn(batch, tokens, d_in, generator=gen), torch.rand(batch, k, generator=gen)
    base = torch.randn(batch, tokens, d_out, generator=gen)
    lora = StackedLora(factors, "cpu", torch.float32)
    h_, w_, base_ = (t.clone().requires_grad_() for t in (h, weight, base))
    result = lora.example_delta(h_, chosen, w_, out=base_ * 1)
    h_ref, w_ref, base_ref = (t.double().requires_grad_() for t in (h, weight, base))
    pairs = pairs_reference(h_ref.reshape(-1, d_in), factors, torch.arange(batch * tokens).repeat_interleave(k),
                            chosen.repeat_interleave(tokens, 0).reshape(-1),
                            w_ref.repeat_interleave(tokens, 0).reshape(-1))
    expected = base_ref + pairs.reshape(batch, tokens, d_out)
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-5)
    probe = torch.randn(batch, tokens, d_out, generator=gen)
    (result * probe).sum().backward()
    (expected * probe.double()).sum().backward()
    for ours, ref in ((h_, h_ref), (w_, w_ref), (base_, base_ref)):
        torch.testing.assert_close(ours.grad.double(), ref.grad, rtol=1e-5, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("tokens", [3, 20])  # fewer than r_pad (8): pairwise dispatch; more: batched per example
def test_a_per_example_decision_covers_every_token_of_its_example(tokens):
    """Library members 0, 2, 3 adapt the module, member 1 does not: an example that chose member 1 gets the
    others' share only."""
    gen = torch.Generator().manual_seed(19)
    d_in, d_out = 16, 24
    factors = [LoraFactors(torch.randn(r, d_in, generator=gen), torch.randn(d_out, r, generator=gen))
               for r in (3, 8, 5)]
    base = torch.nn.Linear(d_in, d_out)
    decision = ExampleDecision(torch.tensor([[2, 0], [1, 3], [3, 2]]),
                               torch.tensor([[0.7, 0.3], [0.4, 0.6], [1.0, 0.0]]))
    layer = RoutedLinear("m", base, factors, [0, 2, 3], None, 2, RoutingRecorder(), RoutingState(decision), 4)
    x = torch.randn(3, tokens, d_in, generator=gen)
    own = {0: factors[0], 2: factors[1], 3: factors[2]}
    expected = torch.stack([base(x[b]) + sum(w * x[b] @ own[int(e)].A.T @ own[int(e)].B.T
                                             for e, w in zip(decision.experts[b], decision.weights[b], strict=True)
                                             if int(e) in own) for b in range(3)])
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_dispatch_paths_agree_in_bfloat16_and_auto_picks_by_shape():
    gen = torch.Generator().manual_seed(12)
    factors = [LoraFactors(torch.randn(r, 32, generator=gen) / 6, torch.randn(48, r, generator=gen) / 4)
               for r in (4, 8, 2)]
    lora = StackedLora(factors, "cpu", torch.bfloat16)
    assert lora.resolved_path() == "grouped"
    # rows of 6 elements are not 16-byte aligned: _grouped_mm refuses them, so the CPU takes the loop
    odd = StackedLora([LoraFactors(torch.randn(2, 6), torch.randn(4, 2))], "cpu", torch.float32)
    assert odd.resolved_path() == "loop" and StackedLora(factors, "cpu", torch.float64).resolved_path() == "loop"
    h = torch.randn(20, 32, generator=gen)
    expert = torch.randint(0, 3, (40,), generator=gen)
    token = torch.arange(20).repeat(2)
    weight = torch.rand(40, generator=gen)
    results = {}
    for path in DISPATCH_PATHS:
        lora.path = path
        results[path] = lora.delta(h, token, expert, weight)
        assert results[path].dtype == torch.bfloat16
    for path in ("grouped", "dense"):
        torch.testing.assert_close(results[path].float(), results["loop"].float(), rtol=2e-2, atol=2e-2)
    lora.path = "nope"
    with pytest.raises(ValueError, match="dispatch path"):
        lora.delta(h, token, expert, weight)


@torch.no_grad()
def test_generate_runs_and_the_recorder_reports_each_tokens_experts(experts):
    model = tiny_llama().eval()
    handle = route_model(model, experts, arrow_routing_vectors(experts), "arrow", {"top_k": 2})
    ids = tokens(batch=2, seq=5)
    model(input_ids=ids)
    assert handle.recorder.records == {}  # off by default
    with handle.recording() as recorder:
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3,
                             do_sample=False, pad_token_id=0)
    assert out.shape == (2, 8)
    assert set(recorder.records) == set(handle.layers)
    q0 = recorder.records["model.layers.0.self_attn.q_proj"]  # all three experts adapt q_proj
    assert [tuple(r.experts.shape) for r in q0] == [(2, 5, 2), (2, 1, 2), (2, 1, 2)]
    assert all(r.weights.shape == r.experts.shape for r in q0)
    torch.testing.assert_close(q0[0].weights.sum(-1), torch.ones(2, 5))
    down = recorder.records["model.layers.1.mlp.down_proj"]  # only expert 1 adapts down_proj
    assert tuple(down[0].experts.shape) == (2, 5, 1) and (down[0].experts == 1).all()
    model(input_ids=ids)
    assert len(recorder.records["model.layers.0.self_attn.q_proj"]) == 3  # stopped with the block


@torch.no_grad()
def test_remove_restores_the_base_model(experts):
    ids = tokens()
    expected = tiny_llama().eval()(input_ids=ids).logits
    model = tiny_llama().eval()
    handle = route_model(model, experts, arrow_routing_vectors(experts), "arrow")
    assert not torch.allclose(model(input_ids=ids).logits, expected)
    handle.remove()
    assert not any(isinstance(m, RoutedLinear) for m in model.modules())
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=0, atol=0)


@torch.no_grad()
def test_conv1d_bases_route_like_peft(tmp_path):
    """GPT-2 stores its linear layers as ``Conv1D`` (``fan_in_fan_out``); the factors need no transposing."""
    from lora_testing import tiny_gpt2
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(tiny_gpt2(), LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"],
                                                   fan_in_fan_out=True, lora_dropout=0.0))
    randomise_lora(peft, seed=7)
    peft.eval().save_pretrained(tmp_path)
    expert = load_adapter(tmp_path)
    ids = tokens()
    model = tiny_gpt2().eval()
    route_model(model, [expert], arrow_routing_vectors([expert]), "arrow")
    torch.testing.assert_close(model(input_ids=ids).logits, peft(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_mismatches_are_refused_with_a_reason(experts):
    routing = arrow_routing_vectors(experts)
    with pytest.raises(ValueError, match="no routing vector"):
        route_model(tiny_llama(), experts, {k: v for k, v in routing.items() if "down_proj" not in k}, "arrow")
    stray = Adapter({"model.nope": experts[0].modules["model.layers.0.self_attn.q_proj"]})
    with pytest.raises(ValueError, match="no module"):
        route_model(tiny_llama(), [stray], arrow_routing_vectors([stray]), "arrow")
    with pytest.raises(KeyError, match="known routers"):
        route_model(tiny_llama(), experts, routing, "moe")
    with pytest.raises(ValueError, match="bad settings"):
        router_config("arrow", {"k": 2})
    with pytest.raises(ValueError, match="top_k"):
        PhatgooseConfig(top_k=0)
    model = tiny_llama()
    route_model(model, experts, routing, "arrow")
    with pytest.raises(ValueError, match="already routed"):
        route_model(model, experts, routing, "arrow")


@torch.no_grad()
def test_a_routed_model_follows_a_later_dtype_change(experts):
    ids = tokens()
    model = tiny_llama().eval()
    route_model(model, experts, arrow_routing_vectors(experts), "arrow", {"top_k": 1})
    expected = model(input_ids=ids).logits
    half = model.to(torch.bfloat16)(input_ids=ids).logits
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), expected, rtol=0.1, atol=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@torch.no_grad()
def test_routing_on_cuda_matches_cpu(experts):
    routing = random_gates(experts, 2)
    ids = tokens()
    cpu = tiny_llama().eval()
    route_model(cpu, experts, routing, "phatgoose", routed_by=notes("phatgoose", {1}))
    expected = cpu(input_ids=ids).logits
    gpu = tiny_llama().eval().cuda()
    route_model(gpu, experts, routing, "phatgoose", routed_by=notes("phatgoose", {1}))
    torch.testing.assert_close(gpu(input_ids=ids.cuda()).logits.cpu(), expected, rtol=1e-4, atol=1e-4)
    centred = {"top_k": 2, "centre": "prototypes", "normalise": True}  # prototypes prepared on the GPU
    cpu, gpu = tiny_llama().eval(), tiny_llama().eval().cuda()
    route_model(cpu, experts, arrow_routing_vectors(experts), "arrow", centred)
    route_model(gpu, experts, arrow_routing_vectors(experts), "arrow", centred)
    torch.testing.assert_close(gpu(input_ids=ids.cuda()).logits.cpu(), cpu(input_ids=ids).logits,
                               rtol=1e-4, atol=1e-4)
    # Each dispatch path on the GPU: float32 against the CPU; bfloat16 against the loop (the grouped kernel is
    # bfloat16-only; elsewhere _grouped_mm falls back to a loop on the host, which "auto" never picks).
    kernel = torch.cuda.get_device_capability()[0] >= 9
    half = {}
    for path in DISPATCH_PATHS:
        gpu = tiny_llama().eval().cuda()
        handle = route_model(gpu, experts, routing, "phatgoose", routed_by=notes("phatgoose", {1}))
        for layer in handle.layers.values():
            layer.lora.path = path
        if path != "grouped":
            torch.testing.assert_close(gpu(input_ids=ids.cuda()).logits.cpu(), expected, rtol=1e-4, atol=1e-4,
                                       msg=path)
        if path != "grouped" or kernel:
            half[path] = gpu.to(torch.bfloat16)(input_ids=ids.cuda()).logits.float().cpu()
    for path in set(half) - {"loop"}:
        torch.testing.assert_close(half[path], half["loop"], rtol=0.05, atol=0.05, msg=path)
    handle = route_model(tiny_llama().eval().cuda().to(torch.bfloat16), experts, routing, "phatgoose")
    assert all(layer.lora.resolved_path() == ("grouped" if kernel else "dense") for layer in handle.layers.values())
    with handle.recording() as recorder:
        out = handle.model.generate(input_ids=ids.cuda(), max_new_tokens=2, do_sample=False, pad_token_id=0)
    assert out.shape == (3, 9) and out.is_cuda
    assert all(r.experts.is_cuda for records in recorder.records.values() for r in records)


def test_arrow_centring_is_sign_free_and_leaves_small_modules_alone():
    """The prototypes' signs are arbitrary: centring must not depend on them; below 3 experts it is a no-op."""
    from zoo.routing.arrow import centre_prototypes

    gen = torch.Generator().manual_seed(5)
    vectors = torch.nn.functional.normalize(torch.randn(5, 16, generator=gen), dim=-1)
    h = torch.randn(40, 16, generator=gen)
    flipped = vectors * torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0])[:, None]
    router = get_router("arrow")
    for settings in ({"centre": "features"}, {"centre": "prototypes"}, {"centre": "prototypes", "normalise": True}):
        config = router_config("arrow", settings)
        logits = router.scorer(vectors, [], config)(h)
        torch.testing.assert_close(router.scorer(flipped, [], config)(h), logits)
        torch.testing.assert_close(logits, arrow_reference_logits(h, vectors, config))
    centred = centre_prototypes(vectors, "prototypes")
    torch.testing.assert_close(centred.norm(dim=-1), torch.ones(5))
    assert torch.equal(centre_prototypes(vectors[:2], "prototypes"), vectors[:2])
    plain, normalised = ArrowConfig(top_k=2), ArrowConfig(top_k=2, normalise=True)  # same ranking, other weights
    assert torch.equal(router.scorer(vectors, [], plain)(h).topk(2).indices,
                       router.scorer(vectors, [], normalised)(h).topk(2).indices)


@torch.no_grad()
def test_a_centred_one_expert_library_still_equals_the_peft_model(experts):
    ids = tokens()
    expected = peft_model(0)(input_ids=ids).logits
    model = tiny_llama().eval()
    route_model(model, experts[:1], arrow_routing_vectors(experts[:1]), "arrow",
                {"centre": "prototypes", "normalise": True})
    torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


def test_arrow_settings_are_checked_and_round_trip():
    from zoo.routing import config_settings

    with pytest.raises(ValueError, match="centre"):
        ArrowConfig(centre="mean")
    config = router_config("arrow", {"top_k": 2, "centre": "features", "normalise": True})
    assert config_settings(config) == {"top_k": 2, "temperature": 1.0, "centre": "features", "normalise": True}
    assert router_config("arrow", {"top_k": 2}) == ArrowConfig(top_k=2, centre="none", normalise=False)
