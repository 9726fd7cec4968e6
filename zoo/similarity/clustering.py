"""Model-based clustering (MBC) of adapters on the geometry of their updates.

MBC (Ostapenko et al. 2024, arXiv:2405.11157) runs k-means on the normalised parameter vectors of the
adapters. We run the same k-means on the normalised *updates* ``dW`` without ever forming them: the cosine
matrix ``C`` is their Gram matrix, so the scaled eigenvectors ``X = V sqrt(L)`` of ``C`` (``X X^T = C``) are
an isometric embedding of the unit-norm updates, and Euclidean k-means on ``X`` is k-means on the updates.
For hub-scale N, the rows of ``sketch_embedding`` play the role of ``X`` directly.
``k`` is fixed or chosen by the silhouette (cosine distance) over a range; runs are deterministic in ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

# Silhouettes on more rows than this are estimated on a seeded sample (sklearn's sample_size).
SILHOUETTE_SAMPLE = 5000


@dataclass(frozen=True)
class Clustering:
    """``labels: (N,)`` in ``0..k-1``; ``silhouette`` of the chosen ``k`` (-1..1, higher is better,
    0 when undefined); ``silhouette_by_k`` for every ``k`` tried."""

    labels: np.ndarray
    k: int
    silhouette: float
    silhouette_by_k: dict[int, float] = field(default_factory=dict)


def embed_similarity(similarity: np.ndarray) -> np.ndarray:
    """``(N, N)`` cosine/Gram matrix -> ``(N, p)`` points whose dot products reproduce it (negative
    eigenvalues, from estimation noise, are dropped)."""
    sym = (np.asarray(similarity, dtype=np.float64) + np.asarray(similarity, dtype=np.float64).T) / 2
    eigvals, eigvecs = np.linalg.eigh(sym)
    keep = eigvals > eigvals.max(initial=0.0) * 1e-10
    return eigvecs[:, keep] * np.sqrt(eigvals[keep])


def _points(x: np.ndarray | Sequence) -> np.ndarray:
    """Adapters -> exact cosine -> embedding; a square similarity -> embedding; an ``(N, D)`` matrix as is."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2 and x.shape[0] == x.shape[1] and np.allclose(x, x.T, atol=1e-8):
            return embed_similarity(x)
        if x.ndim == 2:
            return x.astype(np.float64)
        raise ValueError(f"expected an (N, N) similarity or an (N, D) embedding, got shape {x.shape}")
    from zoo.algebra.inner import cosine_matrix

    return embed_similarity(cosine_matrix(list(x)))


def _silhouette(points: np.ndarray, labels: np.ndarray, seed: int) -> float:
    if len(set(labels.tolist())) < 2 or len(set(labels.tolist())) >= len(labels):
        return 0.0
    sample = SILHOUETTE_SAMPLE if len(labels) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(points, labels, metric="cosine", sample_size=sample, random_state=seed))


def _kmeans(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)


def cluster(
    x: np.ndarray | Sequence,
    k: int | None = None,
    k_range: tuple[int, int] = (2, 12),
    seed: int = 0,
) -> Clustering:
    """Cluster adapters (a list of ``Adapter``), an ``(N, N)`` cosine matrix, or an ``(N, D)`` embedding.

    ``k`` fixed, or ``None`` to pick the ``k`` in ``k_range`` (inclusive, capped at ``N - 1``) with the best
    silhouette; with fewer than 3 items there is nothing to choose (the silhouette needs ``2 <= k < N``): one
    cluster. Deterministic for a given ``seed``.
    """
    points = _points(x)
    n = points.shape[0]
    if k is None and n < 3:
        k = 1
    if k is not None:
        if not 1 <= k <= n:
            raise ValueError(f"k must be in 1..{n}, got {k}")
        labels = _kmeans(points, k, seed)
        score = _silhouette(points, labels, seed)
        return Clustering(labels=labels, k=k, silhouette=score, silhouette_by_k={k: score})
    low, high = max(2, k_range[0]), min(k_range[1], n - 1)
    if low > high:
        raise ValueError(f"cannot choose k automatically for {n} items with k_range={k_range}")
    runs = {kk: _kmeans(points, kk, seed) for kk in range(low, high + 1)}
    scores = {kk: _silhouette(points, labels, seed) for kk, labels in runs.items()}
    best = max(scores, key=lambda kk: (scores[kk], -kk))
    return Clustering(labels=runs[best], k=best, silhouette=scores[best], silhouette_by_k=scores)
