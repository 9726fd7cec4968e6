"""Factored inner products, cosine, block Gram, sketches and SVD against dense references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lora_testing import SHAPES, dense, gauge_rotated, random_adapter

from zoo.adapters import Adapter
from zoo.algebra import (
    cosine_matrix,
    factored_svd,
    frobenius_norm,
    inner_product,
    module_cosines,
    module_gram,
    module_inner,
    pairwise_inner,
    sketch,
    sketch_cosine_matrix,
    sketch_pairwise_inner,
    truncate_factors,
)
from zoo.algebra.sketch import projections

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def dense_cosine(adapters: list[Adapter]) -> np.ndarray:
    """Reference: flatten the dense updates of the modules each pair shares."""
    n = len(adapters)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            shared = [m for m in adapters[i].modules if m in adapters[j].modules]
            if not shared:
                continue
            x = torch.cat([adapters[i].modules[m].delta().reshape(-1) for m in shared])
            y = torch.cat([adapters[j].modules[m].delta().reshape(-1) for m in shared])
            out[i, j] = float(x @ y / (x.norm() * y.norm()))
    return out


def test_module_inner_and_norm_match_dense():
    a, b = random_adapter(0), random_adapter(1, rank=5)
    for m in SHAPES:
        expected = (a.modules[m].delta() * b.modules[m].delta()).sum()
        torch.testing.assert_close(module_inner(a.modules[m], b.modules[m]), expected)
    total = sum(float((a.modules[m].delta() * b.modules[m].delta()).sum()) for m in SHAPES)
    assert inner_product(a, b) == pytest.approx(total, rel=1e-12)
    assert frobenius_norm(a) == pytest.approx(float(torch.cat([d.reshape(-1) for d in dense(a).values()]).norm()))


@pytest.mark.parametrize("device", DEVICES)
def test_block_gram_with_mixed_ranks_and_tiles_matches_dense(device):
    adapters = [random_adapter(seed, rank=1 + seed % 4) for seed in range(7)]
    factors = [a.modules["layers.0.up"] for a in adapters]
    flat = torch.stack([f.delta().reshape(-1) for f in factors])
    expected = flat @ flat.T
    torch.testing.assert_close(module_gram(factors, device=device).cpu(), expected)
    torch.testing.assert_close(module_gram(factors, device=device, tile_rank=4).cpu(), expected)
    low = module_gram(factors, device=device, dtype=torch.float32).cpu().double()
    torch.testing.assert_close(low, expected, rtol=1e-5, atol=1e-4)


def test_cosine_matrix_matches_dense_including_partial_module_overlap():
    adapters = [random_adapter(seed, rank=2 + seed) for seed in range(4)]
    adapters.append(adapters[0].subset(["layers.0.q", "layers.1.q"]))
    adapters.append(random_adapter(9).subset(["layers.0.up"]))
    cos = cosine_matrix(adapters)
    np.testing.assert_allclose(cos, dense_cosine(adapters), atol=1e-12)
    np.testing.assert_allclose(np.diag(cos), 1.0)
    assert cos[0, 4] == pytest.approx(1.0)  # a subset agrees with its source on what they share
    only_q = cosine_matrix(adapters[:4], modules=["layers.0.q"])
    np.testing.assert_allclose(only_q, dense_cosine([a.subset(["layers.0.q"]) for a in adapters[:4]]), atol=1e-12)


def test_pairs_without_shared_modules_have_zero_cosine():
    a = random_adapter(0).subset(["layers.0.q"])
    b = random_adapter(1).subset(["layers.1.q"])
    np.testing.assert_array_equal(cosine_matrix([a, b]), np.eye(2))


def test_gauge_rotated_twins_are_identical_but_raw_factor_cosine_is_not():
    a = random_adapter(3, rank=4)
    twin = gauge_rotated(a, seed=11)
    np.testing.assert_allclose(cosine_matrix([a, twin]), np.ones((2, 2)), atol=1e-12)
    assert inner_product(a, twin) == pytest.approx(inner_product(a, a), rel=1e-10)
    assert all(c == pytest.approx(1.0) for c in module_cosines(a, twin).values())
    # What MBC on flattened A/B would see: the same update looks like a different adapter.
    flat = [torch.cat([torch.cat([f.A.reshape(-1), f.B.reshape(-1)]) for f in x.modules.values()]) for x in (a, twin)]
    assert float(flat[0] @ flat[1] / (flat[0].norm() * flat[1].norm())) < 0.9


def test_negated_adapter_has_cosine_minus_one():
    a = random_adapter(5)
    neg = a.with_modules({m: type(f)(f.A, -f.B) for m, f in a.modules.items()})
    assert cosine_matrix([a, neg])[0, 1] == pytest.approx(-1.0)


def test_sketch_projections_are_seeded_per_module_and_shape():
    o1 = projections(0, "m", 12, 10, 4)
    assert torch.equal(o1[0], projections(0, "m", 12, 10, 4)[0])
    assert not torch.equal(o1[0], projections(1, "m", 12, 10, 4)[0])
    assert not torch.equal(o1[0], projections(0, "other", 12, 10, 4)[0])
    a, b = random_adapter(0), random_adapter(1)
    s_a, s_b = sketch(a, k=4, seed=0), sketch(b, k=4, seed=0)
    assert all(s.shape == (4, 4) for s in s_a.values())
    o_out, o_in = projections(0, "layers.0.q", 12, 10, 4)
    expected = o_out.T @ dense(b)["layers.0.q"] @ o_in
    torch.testing.assert_close(s_b["layers.0.q"].double(), expected, rtol=1e-5, atol=1e-5)
    twin = sketch(gauge_rotated(a, 2), k=4, seed=0)
    for m in s_a:
        torch.testing.assert_close(twin[m], s_a[m], rtol=1e-4, atol=1e-4)


def test_sketch_inner_products_are_unbiased():
    a, b = random_adapter(0, rank=2), random_adapter(1, rank=2)
    exact = inner_product(a, b)
    scale = frobenius_norm(a) * frobenius_norm(b)
    estimates = []
    for seed in range(400):
        pair = sketch_pairwise_inner([sketch(a, k=4, seed=seed, dtype=torch.float64),
                                      sketch(b, k=4, seed=seed, dtype=torch.float64)])
        estimates.append(float(pair.inner[0, 1]))
    mean, sem = np.mean(estimates), np.std(estimates) / np.sqrt(len(estimates))
    assert abs(mean - exact) < 4 * sem + 1e-9 * scale
    assert sem < 0.1 * scale  # the test has power: the standard error is small against the scale


def test_sketch_cosine_approximates_exact_cosine():
    base = random_adapter(0)
    adapters = [base] + [
        base.with_modules({m: type(f)(torch.cat([f.A, g.A]), torch.cat([f.B, 0.5 * (i + 1) * g.B], dim=1))
                           for (m, f), g in zip(base.modules.items(), random_adapter(i + 10).modules.values())})
        for i in range(4)
    ]
    exact = cosine_matrix(adapters)
    estimated = sketch_cosine_matrix([sketch(a, k=10, seed=3) for a in adapters])
    assert np.abs(estimated - exact).max() < 0.15


@pytest.mark.parametrize("device", DEVICES)
def test_factored_svd_matches_dense_svd_batched(device):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 5, 40, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 30, 5, generator=gen, dtype=torch.float64)
    u, s, vh = factored_svd(a.to(device), b.to(device))
    dense_s = torch.linalg.svdvals(b @ a)[:, :5]
    torch.testing.assert_close(s.cpu(), dense_s)
    torch.testing.assert_close((u * s[:, None, :] @ vh).cpu(), b @ a)
    eye = torch.eye(5, dtype=torch.float64)
    torch.testing.assert_close((u.mT @ u).cpu(), eye.expand(3, 5, 5))
    torch.testing.assert_close((vh @ vh.mT).cpu(), eye.expand(3, 5, 5))


def test_truncate_factors_is_the_best_low_rank_approximation():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(8, 40, generator=gen, dtype=torch.float64)
    b = torch.randn(30, 8, generator=gen, dtype=torch.float64)
    a3, b3 = truncate_factors(a, b, 3)
    assert a3.shape == (3, 40) and b3.shape == (30, 3)
    u, s, vh = torch.linalg.svd(b @ a)
    best = (u[:, :3] * s[:3]) @ vh[:3]
    torch.testing.assert_close(b3 @ a3, best)
    torch.testing.assert_close(a3.norm(dim=1), b3.norm(dim=0))  # singular values split evenly


def test_pairwise_inner_exposes_shared_norms():
    a = random_adapter(0)
    b = random_adapter(1).subset(["layers.0.q"])
    pair = pairwise_inner([a, b])
    assert float(pair.shared_sq_norm[0, 1]) == pytest.approx(float(dense(a)["layers.0.q"].pow(2).sum()))
    assert float(pair.shared_sq_norm[0, 0]) == pytest.approx(frobenius_norm(a) ** 2)
