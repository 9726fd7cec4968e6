"""One planner: which candidates to build from a base model's experts and their clusters, named one way.

Baselines (the base, each single expert, the uniform merge of everything) come first, then per cluster
its merges (the configured methods) and its libraries (the configured routers), then libraries over all
experts. Names: ``base``, the expert's adapter id, ``uniform-merge``, ``cluster<c>-<method>``,
``cluster<c>-<router>``, ``all-<router>``. Duplicates (same content key) are planned once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.candidates.experts import ExpertPool
from zoo.candidates.spec import CandidateSpec, Member
from zoo.routing import ROUTERS, default_settings
from zoo.similarity.clustering import cluster

UNIFORM_METHOD = "linear"


def _all_routers() -> list[str]:
    return sorted(ROUTERS)


@dataclass(frozen=True)
class CandidateChoices:
    """Which candidates to plan. ``merge_options`` / ``router_settings``: per method or router, over its defaults."""

    merge_methods: list[str] = field(default_factory=lambda: ["linear", "ties", "regmean", "greedy_soup"])
    routers: list[str] = field(default_factory=_all_routers)
    experts: bool = True                # single experts (they give the oracle reference)
    uniform: bool = True                # the uniform merge of everything (a baseline)
    libraries_per_cluster: bool = True
    libraries_over_all: bool = True
    merge_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    router_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> CandidateChoices:
        """From flow parameters (plain JSON); unknown keys are an error that lists the known ones."""
        known = set(asdict(cls()))
        unknown = set(raw or {}) - known
        if unknown:
            raise ValueError(f"unknown candidate options {sorted(unknown)}; known: {sorted(known)}")
        return cls(**(raw or {}))


def plan_candidates(members: Sequence[Member], clusters: Mapping[int, Sequence[Member]], choices: CandidateChoices,
                    base_model: str | None = None, base_revision: str | None = None,
                    clustering_id: str | None = None) -> list[CandidateSpec]:
    """The candidates of ``members`` grouped as ``clusters`` (cluster id -> members), in a fixed order."""
    common = {"base_model": base_model, "base_revision": base_revision}
    everyone = tuple(sorted(members))
    out = [CandidateSpec("base", name="base", **common)]
    if choices.experts:
        out += [CandidateSpec("expert", (m,), name=m.adapter_id, **common) for m in everyone]
    if choices.uniform and len(everyone) > 1:
        out.append(CandidateSpec("merge", everyone, method=UNIFORM_METHOD, name="uniform-merge", **common))
    groups = [(f"cluster{c}", tuple(group), c) for c, group in sorted(clusters.items()) if len(group) > 1]
    for label, group, c in groups:
        tag = {"clustering_id": clustering_id, "cluster": c, **common}
        out += [CandidateSpec("merge", group, method=method, settings=choices.merge_options.get(method, {}),
                              name=f"{label}-{method}", **tag) for method in choices.merge_methods]
        if choices.libraries_per_cluster:
            out += [_library(group, router, choices, f"{label}-{router}", tag) for router in choices.routers]
    if choices.libraries_over_all and len(everyone) > 1:
        tag = {"clustering_id": clustering_id, "cluster": None, **common}
        out += [_library(everyone, router, choices, f"all-{router}", tag) for router in choices.routers]
    unique: dict[str, CandidateSpec] = {}
    for spec in out:
        unique.setdefault(spec.key, spec)
    return list(unique.values())


def _library(members: tuple[Member, ...], router: str, choices: CandidateChoices, name: str,
             tag: dict[str, Any]) -> CandidateSpec:
    settings = {**default_settings(router), **choices.router_settings.get(router, {})}
    return CandidateSpec("library", members, method=router, settings=settings, name=name, **tag)


def exact_clusters(pool: ExpertPool, k: int | None = None, seed: int = 0) -> dict[int, list[Member]]:
    """The pool's experts clustered on their exact updates (``k=None``: by silhouette), clusters numbered in
    order of their first member."""
    names = pool.names
    labels = cluster([pool.adapter(m) for m in names], k=k, seed=seed).labels.tolist()
    groups: dict[int, list[Member]] = {}
    for name, label in zip(names, labels, strict=True):
        expert = pool[name]
        groups.setdefault(label, []).append(Member(expert.repo_id, expert.revision, expert.subfolder))
    return dict(enumerate(sorted(groups.values(), key=lambda g: names.index(g[0].adapter_id))))
