"""Integration with the demo zoo: loading matches PEFT for every recipe, and MBC recovers the skill families."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lora_testing import peft_deltas
from sklearn.metrics import adjusted_rand_score

from zoo.adapters import InvalidAdapter, UnsupportedAdapter, load_adapter
from zoo.algebra import cosine_matrix, sketch_cosine_matrix, sketch_many
from zoo.algebra.prototypes import arrow_prototype_details
from zoo.similarity.clustering import cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest(tiny_zoo):
    return json.loads((tiny_zoo / "zoo.json").read_text())


@pytest.fixture(scope="module")
def experts(tiny_zoo, manifest):
    """``(manifest entry, Adapter)`` for every expert of the zoo, in manifest order."""
    return [(entry, load_adapter(tiny_zoo / entry["repo_id"])) for entry in manifest["experts"]]


def recipe(entry: dict) -> tuple:
    """What distinguishes one LoRA configuration from another in the manifest."""
    targets = entry["target_modules"]
    return (entry["rank"], entry["alpha"], entry["use_rslora"], isinstance(targets, str),
            json.dumps(entry["rank_pattern"], sort_keys=True), json.dumps(entry["alpha_pattern"], sort_keys=True),
            json.dumps(targets, sort_keys=True))


def test_delta_matches_peft_for_every_recipe_of_the_zoo(tiny_zoo, manifest, experts):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    by_recipe = {}
    for entry, adapter in experts:
        by_recipe.setdefault(recipe(entry), (entry, adapter))
    kinds = list(by_recipe)
    # The zoo must exercise the config variants ingest has to get right, or this test proves less than it says.
    assert any(k[2] for k in kinds), "no rsLoRA expert"
    assert any(k[3] for k in kinds), "no regex target_modules expert"
    assert any(k[4] != "{}" for k in kinds), "no rank_pattern expert"
    for entry, adapter in by_recipe.values():
        base = AutoModelForCausalLM.from_pretrained(tiny_zoo / manifest["base_model"])
        reference = peft_deltas(PeftModel.from_pretrained(base, tiny_zoo / entry["repo_id"]))
        assert sorted(adapter.modules) == sorted(reference), entry["repo_id"]
        for name, delta in reference.items():
            torch.testing.assert_close(adapter.delta(name), delta, rtol=1e-5, atol=1e-6, msg=entry["repo_id"])
        assert adapter.base_model_name_or_path == manifest["base_model"]


def test_every_expert_has_well_defined_arrow_prototypes(experts):
    for _, adapter in experts:
        for name, proto in arrow_prototype_details(adapter).items():
            assert proto.sigma_1 > 0, name
            assert torch.isfinite(proto.vector).all() and abs(float(proto.vector.norm()) - 1) < 1e-5


def test_mbc_recovers_the_skill_families(experts):
    """MBC (k-means on the factored cosine, k = number of families) recovers the families well beyond chance.

    Two bars. A permutation test: the ARI must beat the 99th percentile of the same partition's ARI
    against randomly permuted family labels (p < 0.01; it adapts to the zoo's size). And a floor of 0.6:
    the zoo's families share input text and prompt frames, so their updates overlap (mean cosine within
    a family ~0.06 vs ~0.01 across); measured on the tiny zoo (12 experts, 4 families of 3): ARI 0.75
    against a null 99th percentile of 0.36, i.e. at most one expert misplaced. The floor leaves room
    for float differences between machines, not for a second family breaking up.
    """
    families = np.array([entry["family"] for entry, _ in experts])
    adapters = [adapter for _, adapter in experts]
    result = cluster(cosine_matrix(adapters), k=len(set(families)), seed=0)
    ari = adjusted_rand_score(families, result.labels)
    rng = np.random.default_rng(0)
    null = [adjusted_rand_score(rng.permutation(families), result.labels) for _ in range(1000)]
    threshold = float(np.quantile(null, 0.99))
    print(f"\nMBC on {len(adapters)} demo-zoo experts, k={result.k}: ARI {ari:.3f} "
          f"(chance 99th percentile {threshold:.3f}), silhouette {result.silhouette:.3f}")
    assert ari > threshold
    assert ari >= 0.6
    assert np.array_equal(cluster(cosine_matrix(adapters), k=result.k, seed=0).labels, result.labels)


def test_same_family_experts_are_more_similar_than_others(experts):
    families = np.array([entry["family"] for entry, _ in experts])
    cos = cosine_matrix([adapter for _, adapter in experts])
    same = families[:, None] == families[None, :]
    off_diagonal = ~np.eye(len(families), dtype=bool)
    within, across = cos[same & off_diagonal].mean(), cos[~same].mean()
    print(f"\nmean cosine within families {within:.3f}, across {across:.3f}")
    assert within > 2 * across


def test_sketched_cosine_tracks_the_exact_one_on_real_experts(experts):
    """k = 64 sketches of 10-module adapters: measured Pearson 0.90 with the exact cosine over expert pairs.
    (Their error, ~0.06, is of the order of the zoo's cosines, so sketches are for hub-scale N, not for
    clustering 12 tiny experts.)"""
    adapters = [adapter for _, adapter in experts]
    exact = cosine_matrix(adapters)
    estimated = sketch_cosine_matrix(sketch_many(adapters, k=64, seed=0))
    upper = np.triu_indices(len(adapters), 1)
    assert np.corrcoef(exact[upper], estimated[upper])[0, 1] > 0.75


EXPECTED_REFUSAL = {
    "pickle_only": UnsupportedAdapter,
    "nan_weights": InvalidAdapter,
    "missing_config": InvalidAdapter,
    "malformed_config": InvalidAdapter,
    "dora": UnsupportedAdapter,
    "path_traversal": InvalidAdapter,  # sharded index only: nothing outside the repo is ever opened
}


def test_broken_repos_are_refused_with_a_reason(tiny_zoo, manifest):
    from safetensors import safe_open

    base_weights = tiny_zoo / manifest["base_model"] / "model.safetensors"
    with safe_open(str(base_weights), "pt") as f:
        shapes = {key.removesuffix(".weight"): f.get_slice(key).get_shape() for key in f.keys()}
    kinds = set()
    for entry in manifest["broken"]:
        kinds.add(entry["kind"])
        path = tiny_zoo / entry["repo_id"]
        if entry["kind"] == "shape_mismatch":  # well-formed on its own: only the base model reveals it
            with pytest.raises(InvalidAdapter, match="base weight"):
                load_adapter(path).check_fits(shapes)
            continue
        with pytest.raises(EXPECTED_REFUSAL[entry["kind"]]) as caught:
            load_adapter(path)
        assert caught.value.reason
    assert kinds >= set(EXPECTED_REFUSAL)
    for entry in manifest["experts"]:
        load_adapter(tiny_zoo / entry["repo_id"]).check_fits(shapes)
