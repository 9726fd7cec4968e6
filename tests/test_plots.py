"""Run charts: valid PNG files, and the heatmap's cluster ordering puts same-cluster members together."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from zoo.plots import cluster_order, leaderboard_chart, routing_histogram, routing_histograms, similarity_heatmap

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_cluster_order_groups_members_and_marks_boundaries():
    labels = [2, 0, 2, 1, 0, 2]
    order, starts = cluster_order(labels, len(labels))
    assert sorted(order) == list(range(6))
    assert [labels[i] for i in order] == [0, 0, 1, 2, 2, 2]
    assert order == [1, 4, 3, 0, 2, 5]  # members keep their order inside a cluster
    assert starts == [2, 3]


def test_cluster_order_without_labels_keeps_the_order():
    assert cluster_order(None, 3) == ([0, 1, 2], [])
    assert cluster_order([4, 4, 4], 3) == ([0, 1, 2], [])
    with pytest.raises(ValueError, match="2 labels for 3 members"):
        cluster_order([0, 1], 3)


def test_similarity_heatmap_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    names = [f"org/expert-{i}" for i in range(5)]
    path = similarity_heatmap(vectors @ vectors.T, names, [1, 0, 1, 0, 2], tmp_path / "plots" / "similarity.png")
    assert path == tmp_path / "plots" / "similarity.png"
    assert_png(path)
    assert_png(similarity_heatmap(vectors @ vectors.T, names, None, tmp_path / "plain.png"))
    with pytest.raises(ValueError, match="expected"):
        similarity_heatmap(np.eye(4), names, None, tmp_path / "bad.png")


def test_routing_histograms_write_png(tmp_path):
    counts = {"org/reverse": 30, "org/double": 5, "org/sum": 0}
    assert_png(routing_histogram("strings-reverse", counts, tmp_path / "one.png", highlight={"org/reverse"}))
    assert_png(routing_histogram("empty", {"org/reverse": 0}, tmp_path / "zero.png"))
    per_task = {"strings-reverse": counts, "math-sum": {"org/reverse": 0.1, "org/sum": 0.9},
                "lists-sort": {"org/sort": 1.0}, "held-out": {"org/sum": 2, "org/sort": 2}}
    grid = routing_histograms(per_task, tmp_path / "grid.png", highlight={"math-sum": ["org/sum"]}, columns=2)
    assert_png(grid)


def test_leaderboard_chart_writes_png(tmp_path):
    rows = [
        {"candidate": "base", "held-in_exact_match": 0.1, "held-out_exact_match": 0.05},
        {"candidate": "merge-ties", "held-in_exact_match": 0.6, "held-out_exact_match": 0.3},
        {"candidate": "oracle", "held-in_exact_match": 0.9, "held-out_exact_match": float("nan")},
        {"candidate": "arrow", "held-in_exact_match": 0.7, "held-out_exact_match": 0.4},
    ]
    assert_png(leaderboard_chart(rows, tmp_path / "leaderboard.png"))
    with pytest.raises(ValueError):
        leaderboard_chart([], tmp_path / "none.png")
