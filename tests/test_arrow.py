"""Arrow prototypes: exact top right singular vectors of ``B @ A`` against dense SVD."""

from __future__ import annotations

import pytest
import torch
from lora_testing import SHAPES, gauge_rotated, random_adapter

from zoo.adapters import Adapter, LoraFactors
from zoo.algebra.prototypes import arrow_prototype_details, arrow_prototypes, library_prototypes, top_right_singular


def test_prototypes_match_dense_svd_with_canonical_sign():
    adapter = random_adapter(0, rank={"layers.0.q": 4, "layers.0.up": 2, "layers.1.q": 4})
    details = arrow_prototype_details(adapter)
    assert list(details) == list(SHAPES)
    for name, f in adapter.modules.items():
        _, s, vh = torch.linalg.svd(f.delta())
        v = details[name].vector.double()
        assert v.shape == (f.d_in,) and details[name].vector.dtype == torch.float32
        assert abs(float(v @ vh[0])) == pytest.approx(1.0, abs=1e-6)
        assert float(v[v.abs().argmax()]) > 0
        assert details[name].sigma_1 == pytest.approx(float(s[0]), rel=1e-10)
        assert details[name].sigma_ratio == pytest.approx(float(s[1] / s[0]), rel=1e-10)
    assert all(torch.equal(arrow_prototypes(adapter)[m], details[m].vector) for m in SHAPES)


def test_gauge_rotated_twins_have_identical_prototypes():
    adapter = random_adapter(1, rank=4)
    ours, twin = arrow_prototypes(adapter), arrow_prototypes(gauge_rotated(adapter, 5))
    for name in ours:
        torch.testing.assert_close(ours[name], twin[name], rtol=0, atol=1e-6)


def test_rank_one_update_has_zero_ratio_and_zero_update_has_ratio_one():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1, 10, generator=gen, dtype=torch.float64)
    b = torch.randn(12, 1, generator=gen, dtype=torch.float64)
    v, s, ratio = top_right_singular(a[None], b[None])
    torch.testing.assert_close(v[0].abs(), (a[0] / a[0].norm()).abs())
    assert float(ratio[0]) == 0.0 and float(s[0]) == pytest.approx(float(a.norm() * b.norm()))
    zeros_a, zeros_b = torch.zeros(1, 2, 10, dtype=torch.float64), torch.zeros(1, 12, 2, dtype=torch.float64)
    _, s0, ratio0 = top_right_singular(zeros_a, zeros_b)
    assert float(s0[0]) == 0.0 and float(ratio0[0]) == 1.0


def _with_spectrum(singular_values: list[float], d_out: int = 40, d_in: int = 30, seed: int = 0) -> LoraFactors:
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d_out, len(singular_values), generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d_in, len(singular_values), generator=gen, dtype=torch.float64))
    r = torch.randn(len(singular_values), len(singular_values), generator=gen, dtype=torch.float64) + 3 * torch.eye(
        len(singular_values), dtype=torch.float64)  # hide the SVD behind an arbitrary gauge
    return LoraFactors(A=r @ v.T, B=u * torch.tensor(singular_values, dtype=torch.float64) @ torch.linalg.inv(r))


@pytest.mark.parametrize("gap", [1e-2, 1e-5, 1e-9, 0.0])
def test_near_degenerate_spectra_give_a_vector_of_the_top_subspace(gap):
    """With sigma_2 ~ sigma_1 the top vector is ill-defined; what must hold is that the prototype lies in
    the top singular subspace and attains sigma_1 (``||dW v|| = sigma_1``), and the ratio reports the gap."""
    f = _with_spectrum([1.0, 1.0 - gap, 0.3, 0.1])
    proto = arrow_prototype_details(Adapter({"m": f}))["m"]
    v = proto.vector.double()
    _, s, vh = torch.linalg.svd(f.delta())
    assert float((f.delta() @ v).norm()) == pytest.approx(float(s[0]), abs=1e-6)
    assert float((vh[:2] @ v).norm()) == pytest.approx(1.0, abs=1e-6)
    assert proto.sigma_ratio == pytest.approx(1.0 - gap, abs=1e-9)
    if gap >= 1e-2:
        assert abs(float(v @ vh[0])) == pytest.approx(1.0, abs=1e-5)


def test_library_prototypes_stack_experts_per_module():
    experts = [random_adapter(0), random_adapter(1, rank=2).subset(["layers.0.q"]), random_adapter(2, rank=5)]
    library = library_prototypes(experts)
    assert library["layers.0.q"].experts == [0, 1, 2]
    assert library["layers.1.q"].experts == [0, 2]
    assert library["layers.0.up"].vectors.shape == (2, 10)
    for name, protos in library.items():
        for row, e in enumerate(protos.experts):
            single = arrow_prototype_details(experts[e])[name]
            torch.testing.assert_close(protos.vectors[row], single.vector)
            assert float(protos.sigma_1[row]) == pytest.approx(single.sigma_1)
            assert float(protos.sigma_ratio[row]) == pytest.approx(single.sigma_ratio)
