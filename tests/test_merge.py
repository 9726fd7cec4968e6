"""Merging: every method against a straightforward dense reference written here, element-wise on dW."""

from __future__ import annotations

import pytest
import torch
from lora_testing import SHAPES, dense, peft_deltas, random_adapter, randomise_lora, tiny_llama

from zoo.adapters import load_adapter
from zoo.merge import METHODS, merge
from zoo.merge.refactor import dense_to_factors

FULL = 10  # >= min(d_out, d_in) of every test module: re-factoring is lossless


# --- dense references (PEFT/mergekit semantics, spelled out) -----------------------------------------


def ref_magnitude(x: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * x.numel())
    mask = torch.zeros(x.numel(), dtype=torch.bool)
    mask[torch.topk(x.abs().reshape(-1), k).indices] = True
    return x * mask.reshape(x.shape)


def ref_breadcrumbs(x: torch.Tensor, density: float, gamma: float) -> torch.Tensor:
    n = x.numel()
    n_top, keep = int(gamma * n), int(density * n)
    order = torch.argsort(x.abs().reshape(-1))  # ascending
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[n - n_top - keep: n - n_top]] = True
    return x * mask.reshape(x.shape)


def ref_ties(deltas: list[torch.Tensor], weights: list[float], density: float) -> torch.Tensor:
    u = torch.stack([w * ref_magnitude(d, density) for d, w in zip(deltas, weights)])
    elected = torch.where(u.sum(0) >= 0, 1.0, -1.0).to(u.dtype)
    agree = (u.sign() == elected).to(u.dtype)
    divisor = (agree * torch.tensor(weights, dtype=u.dtype)[:, None, None]).sum(0)
    divisor[divisor.abs() < 1e-12] = 1
    return (u * agree).sum(0) / divisor


def merged_dense(adapter) -> dict[str, torch.Tensor]:
    return {m: f.delta().double() for m, f in adapter.modules.items()}


def assert_deltas_close(adapter, expected: dict[str, torch.Tensor], tol: float = 1e-5) -> None:
    got = merged_dense(adapter)
    assert sorted(got) == sorted(expected)
    for m in expected:
        scale = float(expected[m].abs().max()) or 1.0
        torch.testing.assert_close(got[m], expected[m].double(), rtol=0, atol=tol * scale)


ADAPTERS = [random_adapter(0, rank=3), random_adapter(1, rank=2), random_adapter(2, rank=4)]


# --- behaviour ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(METHODS))
def test_merging_one_adapter_with_weight_one_returns_it(method):
    from test_merge_regmean import RandomGrams, ScoredByTarget

    a = ADAPTERS[0]
    opts = {"density": 1.0} if "density" in METHODS[method].defaults else {}
    if method == "breadcrumbs":
        opts["gamma"] = 0.0
    data = (RandomGrams([a], seed=3) if method == "regmean" else ScoredByTarget(dense(a))) if METHODS[method].prepare \
        else None
    merged = merge([a], method, weights=[1.0], rank=FULL, data=data, **opts)
    assert_deltas_close(merged, dense(a))


def test_linear_and_task_arithmetic_return_the_same_factors_for_one_adapter():
    a = ADAPTERS[0]
    for method in ("linear", "task_arithmetic"):
        merged = merge([a], method)
        for m, f in a.modules.items():
            torch.testing.assert_close(merged.modules[m].A.double(), f.A, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(merged.modules[m].B.double(), f.B, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("weights", [[1.0, -1.0, 0.0], [2.0, -0.5, 0.25], [-1.0, -1.0, -1.0]])
def test_task_arithmetic_is_linear_in_the_weights_including_negative(weights):
    merged = merge(ADAPTERS, "task_arithmetic", weights=weights)
    expected = {m: sum(w * a.modules[m].delta() for a, w in zip(ADAPTERS, weights)) for m in SHAPES}
    assert_deltas_close(merged, expected)
    assert merged.modules["layers.0.q"].rank == 3 + 2 + 4  # exact: concatenated factors


def test_linear_normalises_weights_and_refuses_a_zero_sum():
    merged = merge(ADAPTERS, "linear", weights=[1.0, 2.0, 1.0])
    expected = {m: sum(w * a.modules[m].delta() for a, w in zip(ADAPTERS, [0.25, 0.5, 0.25])) for m in SHAPES}
    assert_deltas_close(merged, expected)
    with pytest.raises(ValueError, match="sum of the weights"):
        merge(ADAPTERS[:2], "linear", weights=[1.0, -1.0])


def test_task_arithmetic_rank_truncation_is_the_best_approximation():
    merged = merge(ADAPTERS, "task_arithmetic", rank=3)
    for m in SHAPES:
        total = sum(a.modules[m].delta() for a in ADAPTERS)
        u, s, vh = torch.linalg.svd(total)
        best = (u[:, :3] * s[:3]) @ vh[:3]
        assert merged.modules[m].rank == 3
        torch.testing.assert_close(merged.modules[m].delta().double(), best, rtol=0, atol=1e-5 * float(s[0]))


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [0.5, 1.5, -0.7]])
@pytest.mark.parametrize("density", [0.2, 0.6])
def test_ties_matches_dense_reference(weights, density):
    merged = merge(ADAPTERS, "ties", weights=weights, rank=FULL, density=density)
    expected = {m: ref_ties([a.modules[m].delta() for a in ADAPTERS], weights, density) for m in SHAPES}
    assert_deltas_close(merged, expected)


def test_ties_frequency_election_and_no_normalisation_via_dense_reference():
    merged = merge(ADAPTERS, "ties", rank=FULL, density=0.5, majority="frequency")
    for m in SHAPES:
        u = torch.stack([ref_magnitude(a.modules[m].delta(), 0.5) for a in ADAPTERS])
        elected = torch.where(u.sign().sum(0) >= 0, 1.0, -1.0).double()
        agree = (u.sign() == elected).double()
        expected = (u * agree).sum(0) / agree.sum(0).clamp_min(1)
        torch.testing.assert_close(merged.modules[m].delta().double(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [0.3, -1.0, 2.0]])
def test_magnitude_prune_matches_dense_reference(weights):
    merged = merge(ADAPTERS, "magnitude_prune", weights=weights, rank=FULL, density=0.3)
    expected = {m: sum(w * ref_magnitude(a.modules[m].delta(), 0.3) for a, w in zip(ADAPTERS, weights)) for m in SHAPES}
    assert_deltas_close(merged, expected)


def test_breadcrumbs_matches_dense_reference():
    merged = merge(ADAPTERS, "breadcrumbs", weights=[1.0, 0.5, 2.0], rank=FULL, density=0.7, gamma=0.05)
    expected = {m: sum(w * ref_breadcrumbs(a.modules[m].delta(), 0.7, 0.05) for a, w in zip(ADAPTERS, [1.0, 0.5, 2.0]))
                for m in SHAPES}
    assert_deltas_close(merged, expected)


def test_dare_drops_and_rescales_and_is_unbiased_and_seeded():
    a = ADAPTERS[0]
    d = a.modules["layers.0.up"].delta()
    one = merge([a], "dare_linear", rank=FULL, density=0.5, seed=3).modules["layers.0.up"].delta().double()
    kept = one.abs() > 1e-4 * float(one.abs().max())
    torch.testing.assert_close(one[kept], 2 * d[kept], rtol=1e-4, atol=1e-6)
    assert 0.3 < kept.double().mean() < 0.7
    again = merge([a], "dare_linear", rank=FULL, density=0.5, seed=3).modules["layers.0.up"].delta().double()
    torch.testing.assert_close(again, one)
    mean = sum(merge([a], "dare_linear", rank=FULL, density=0.5, seed=s).modules["layers.0.up"].delta().double()
               for s in range(200)) / 200
    assert float((mean - d).norm() / d.norm()) < 0.15


def test_dare_at_full_density_equals_its_deterministic_counterpart():
    assert_deltas_close(merge(ADAPTERS, "dare_linear", rank=FULL, density=1.0),
                        merged_dense(merge(ADAPTERS, "task_arithmetic")))
    assert_deltas_close(merge(ADAPTERS, "dare_ties", rank=FULL, density=1.0),
                        merged_dense(merge(ADAPTERS, "ties", rank=FULL, density=1.0)))


def test_modules_missing_from_some_adapters_are_merged_over_their_owners():
    partial = [ADAPTERS[0], ADAPTERS[1].subset(["layers.0.q"])]
    merged = merge(partial, "ties", rank=FULL, density=0.5)
    assert sorted(merged.modules) == sorted(SHAPES)
    expected = ref_ties([ADAPTERS[0].modules["layers.1.q"].delta()], [1.0], 0.5)
    torch.testing.assert_close(merged.modules["layers.1.q"].delta().double(), expected, rtol=0, atol=1e-5)


def test_element_wise_merges_default_to_the_largest_input_rank():
    merged = merge(ADAPTERS, "ties")
    assert merged.ranks() == dict.fromkeys(SHAPES, 4)
    assert merge(ADAPTERS, "ties", rank={"layers.0.q": 2, "layers.0.up": 6}).ranks()["layers.0.q"] == 2


def test_randomised_refactoring_is_near_optimal():
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(300, 200, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(250, 200, generator=gen))
    s = torch.logspace(0, -3, 200)
    matrix = (u * s) @ v.T
    optimal = float(s[8:].norm())
    for svd in ("randomized", "exact"):
        f = dense_to_factors(matrix, 8, svd=svd)
        assert f.rank == 8
        assert float((f.delta() - matrix).norm()) <= 1.01 * optimal


def test_options_and_methods_are_validated():
    with pytest.raises(ValueError, match="unknown merge method"):
        merge(ADAPTERS, "average_ab")
    with pytest.raises(ValueError, match="does not take"):
        merge(ADAPTERS, "linear", density=0.5)
    with pytest.raises(ValueError, match="weights"):
        merge(ADAPTERS, "ties", weights=[1.0])


def test_registry_rows_carry_names_defaults_and_references():
    assert set(METHODS) >= {"linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs",
                            "magnitude_prune"}
    assert METHODS["ties"].sparsify == "magnitude" and METHODS["ties"].consensus == "sign"
    assert METHODS["dare_ties"].sparsify == "random" and METHODS["dare_ties"].consensus == "sign"
    assert all("arXiv" in m.reference or "PEFT" in m.reference for m in METHODS.values())


# --- real PEFT adapters with different ranks and alphas, merged and loaded back by PEFT ---------------


@pytest.fixture(scope="module")
def peft_pair(tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    folders, references = [], []
    for seed, cfg in enumerate([dict(r=4, lora_alpha=8), dict(r=2, lora_alpha=32, use_rslora=True)]):
        model = get_peft_model(tiny_llama(), LoraConfig(target_modules=["q_proj", "v_proj"], **cfg))
        randomise_lora(model, seed)
        folder = tmp_path_factory.mktemp(f"peft{seed}")
        model.save_pretrained(folder)
        folders.append(folder)
        references.append(peft_deltas(model))
    return [load_adapter(f) for f in folders], references


@pytest.mark.parametrize(("method", "opts"), [("task_arithmetic", {}), ("ties", {"density": 0.5})])
def test_merging_adapters_with_different_ranks_and_alphas_round_trips_through_peft(method, opts, peft_pair, tmp_path):
    from peft import PeftModel

    adapters, references = peft_pair
    weights = [0.7, -1.3]
    merged = merge(adapters, method, weights=weights, rank=32 if method == "ties" else None, **opts)
    for m in references[0]:
        deltas = [ref[m].double() for ref in references]
        expected = (weights[0] * deltas[0] + weights[1] * deltas[1] if method == "task_arithmetic"
                    else ref_ties(deltas, weights, 0.5))
        torch.testing.assert_close(merged.delta(m).double(), expected, rtol=0, atol=1e-5)
    merged.save_pretrained(tmp_path, base_model_name_or_path="tiny-llama")
    reloaded = peft_deltas(PeftModel.from_pretrained(tiny_llama(), tmp_path))
    assert sorted(reloaded) == sorted(merged.modules)
    for m, delta in reloaded.items():
        torch.testing.assert_close(delta, merged.delta(m), rtol=1e-5, atol=1e-6)
