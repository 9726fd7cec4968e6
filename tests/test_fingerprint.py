"""Fingerprints (what the catalog keeps of an adapter's weights) against dense references on small shapes,
and the content keys of candidates."""

from __future__ import annotations

import torch

from lora_testing import dense, gauge_rotated, random_adapter
from zoo.algebra.sketch import projections
from zoo.similarity.fingerprint import fingerprint_adapter, sketches_from_rows


def test_fingerprint_matches_the_dense_update() -> None:
    adapter = random_adapter(0, rank={"layers.0.q": 3, "layers.0.up": 5, "layers.1.q": 1})
    fp = fingerprint_adapter(adapter, sketch_size=4, seed=7)
    deltas = dense(adapter)
    assert abs(fp.norm - sum(float(d.norm()) ** 2 for d in deltas.values()) ** 0.5) < 1e-9
    for m in fp.modules:
        delta = deltas[m.module]
        assert (m.d_out, m.d_in) == tuple(delta.shape) and m.rank == adapter.modules[m.module].rank
        assert abs(m.norm - float(delta.norm())) < 1e-9
        _, s, vh = torch.linalg.svd(delta)
        assert abs(m.sigma_1 - float(s[0])) < 1e-6
        assert abs(m.sigma_ratio - (float(s[1] / s[0]) if m.rank > 1 else 0.0)) < 1e-6
        assert abs(abs(float(torch.tensor(m.prototype, dtype=torch.float64) @ vh[0])) - 1) < 1e-5
        o_out, o_in = projections(7, m.module, m.d_out, m.d_in, 4)
        expected = (o_out.T @ delta @ o_in).float()
        stored = sketches_from_rows([{"module": m.module, "sketch": m.sketch}], 4)[m.module]
        assert torch.allclose(stored, expected, atol=1e-4)


def test_fingerprint_is_the_same_for_any_factorisation_of_the_update() -> None:
    adapter = random_adapter(1)
    a, b = fingerprint_adapter(adapter, 4, 0), fingerprint_adapter(gauge_rotated(adapter, 2), 4, 0)
    for x, y in zip(a.modules, b.modules, strict=True):
        assert abs(x.norm - y.norm) < 1e-6 and abs(x.sigma_1 - y.sigma_1) < 1e-6
        assert torch.allclose(torch.tensor(x.prototype), torch.tensor(y.prototype), atol=1e-4)  # canonical sign
        assert torch.allclose(torch.tensor(x.sketch), torch.tensor(y.sketch), atol=1e-3)
