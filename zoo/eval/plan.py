"""From names on a command line to candidate specs: ``base``, ``experts``, ``uniform``, ``clusters``,
``arrow``, ``phatgoose`` over the experts of a pool (the defaults of DESIGN.md sections 5 and 6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zoo.eval.candidates import CandidateSpec
from zoo.eval.experts import ExpertPool

PLANS = ("base", "experts", "uniform", "clusters", "arrow", "phatgoose")
ARROW_DEFAULTS = {"top_k": 3, "temperature": 1.0}
PHATGOOSE_DEFAULTS = {"top_k": 2, "steps": 100, "lr": 5e-3, "examples_per_expert": 4, "seed": 0}


def plan_candidates(
    pool: ExpertPool,
    names: Sequence[str] = PLANS,
    merge_method: str = "linear",
    clusters: int | None = None,
    arrow: Mapping[str, Any] | None = None,
    phatgoose: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> list[CandidateSpec]:
    """Specs for ``names`` in order; ``clusters``: k of the k-means over the experts (``None``: by silhouette)."""
    unknown = set(names) - set(PLANS)
    if unknown:
        raise ValueError(f"unknown candidates {sorted(unknown)}; choose from {PLANS}")
    members = tuple(pool.repo_ids)
    if not members and set(names) - {"base"}:
        raise ValueError("these candidates need experts, but the pool is empty")
    specs: list[CandidateSpec] = []
    for name in names:
        if name == "base":
            specs.append(CandidateSpec("base", name="base"))
        elif name == "experts":
            specs += [CandidateSpec("expert", (m,), name=m) for m in members]
        elif name == "uniform":
            specs.append(CandidateSpec("merge", members, method="linear", name="uniform-merge"))
        elif name == "clusters":
            specs += cluster_merges(pool, merge_method, clusters, seed)
        elif name == "arrow":
            specs.append(CandidateSpec("arrow", members, settings={**ARROW_DEFAULTS, **(arrow or {})}, name="arrow"))
        else:
            specs.append(CandidateSpec("phatgoose", members, settings={**PHATGOOSE_DEFAULTS, **(phatgoose or {})},
                                       name="phatgoose"))
    return specs


def cluster_merges(pool: ExpertPool, method: str, k: int | None, seed: int = 0) -> list[CandidateSpec]:
    """Cluster the experts on their updates (``zoo.similarity.clustering``) and merge each cluster with ``method``."""
    from zoo.similarity.clustering import cluster

    members = pool.repo_ids
    if len(members) < 3 and k is None:  # the silhouette needs k >= 2 and k < N: nothing to choose
        k = 1
    labels = cluster([pool.adapter(m) for m in members], k=k, seed=seed).labels.tolist()
    groups: dict[int, list[str]] = {}
    for repo_id, label in zip(members, labels, strict=True):
        groups.setdefault(label, []).append(repo_id)
    ordered = sorted(groups.values(), key=lambda g: members.index(g[0]))
    return [CandidateSpec("merge", tuple(g), method=method, name=f"cluster{i}-{method}")
            for i, g in enumerate(ordered)]
