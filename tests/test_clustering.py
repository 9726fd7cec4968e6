"""MBC clustering on the factored cosine: recovers planted families whatever the factor gauge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lora_testing import gauge_rotated, random_adapter
from sklearn.metrics import adjusted_rand_score

from zoo.adapters import Adapter, LoraFactors
from zoo.algebra import cosine_matrix, sketch, sketch_embedding
from zoo.similarity.clustering import cluster, embed_similarity


def planted_families(n_families: int = 3, per_family: int = 5, noise: float = 0.6, seed: int = 0):
    """Experts = their family's update + an independent one, each re-expressed in a random gauge."""
    adapters, labels = [], []
    for fam in range(n_families):
        core = random_adapter(1000 + fam, rank=2)
        for j in range(per_family):
            own = random_adapter(seed + 100 * fam + j, rank=2)
            mixed = core.with_modules({
                m: LoraFactors(torch.cat([f.A, own.modules[m].A]), torch.cat([f.B, noise * own.modules[m].B], dim=1))
                for m, f in core.modules.items()})
            adapters.append(gauge_rotated(mixed, seed=7 * fam + j))
            labels.append(fam)
    return adapters, np.array(labels)


def test_fixed_k_recovers_families_deterministically():
    adapters, truth = planted_families()
    result = cluster(adapters, k=3, seed=0)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert result.k == 3 and 0.2 < result.silhouette <= 1.0
    assert np.array_equal(cluster(adapters, k=3, seed=0).labels, result.labels)


def test_automatic_k_picks_the_planted_number_by_silhouette():
    adapters, truth = planted_families(n_families=4, per_family=4)
    cos = cosine_matrix(adapters)
    result = cluster(cos, k=None, k_range=(2, 8))
    assert result.k == 4
    assert set(result.silhouette_by_k) == set(range(2, 9))
    assert result.silhouette == max(result.silhouette_by_k.values())
    assert adjusted_rand_score(truth, result.labels) == 1.0


def test_similarity_embedding_reproduces_the_gram_matrix():
    adapters, _ = planted_families(per_family=3)
    cos = cosine_matrix(adapters)
    x = embed_similarity(cos)
    np.testing.assert_allclose(x @ x.T, cos, atol=1e-10)


def test_sketch_embedding_clusters_like_the_exact_cosine():
    adapters, truth = planted_families(noise=0.4)
    rows = sketch_embedding([sketch(a, k=16, seed=0) for a in adapters])
    assert rows.shape == (15, 3 * 16 * 16)
    assert adjusted_rand_score(truth, cluster(rows, k=3).labels) == 1.0


def test_clustering_raw_factors_would_fail_where_the_factored_cosine_succeeds():
    """Why MBC must not run on flattened A/B: independent inits put the same update in unrelated gauges."""
    adapters, truth = planted_families()
    gen = torch.Generator().manual_seed(0)
    adapters = [a.with_modules({m: _haar_gauge(f, gen) for m, f in a.modules.items()}) for a in adapters]
    flat = np.stack([torch.cat([torch.cat([f.A.reshape(-1), f.B.reshape(-1)]) for f in a.modules.values()]).numpy()
                     for a in adapters])
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    assert adjusted_rand_score(truth, cluster(flat, k=3).labels) < 0.5
    assert adjusted_rand_score(truth, cluster(adapters, k=3).labels) == 1.0


def _haar_gauge(f: LoraFactors, gen: torch.Generator) -> LoraFactors:
    q, _ = torch.linalg.qr(torch.randn(f.rank, f.rank, generator=gen, dtype=f.A.dtype))
    return LoraFactors(A=q @ f.A, B=f.B @ q.T)


def test_invalid_k_is_rejected():
    adapters, _ = planted_families(n_families=1, per_family=2)
    with pytest.raises(ValueError, match="k must be"):
        cluster(adapters, k=5)
    with pytest.raises(ValueError, match="automatically"):  # a range that N items cannot give
        cluster(np.eye(4), k=None, k_range=(5, 12))


def test_fewer_than_three_items_leave_nothing_to_choose_one_cluster():
    adapters, _ = planted_families(n_families=1, per_family=2)
    result = cluster([adapters[0], Adapter(adapters[1].modules)], k=None)
    assert result.k == 1 and result.labels.tolist() == [0, 0]
