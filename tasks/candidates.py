"""Prefect tasks of ``build_candidates``: plan the candidates of a clustering, build each one's folder.

A candidate's key hashes what it computes (kind, method, settings) from which commits (members and
base model), so a re-run with nothing new finds every key in the catalog and builds nothing. Folders
live under ``ZOO_HOME/candidates/<key>/`` (``adapter/`` in PEFT format, or ``library/``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import recycle_records as records
from tasks.catalog_turn import open_catalog
from zoo.candidate_artifacts import ADAPTER, LIBRARY
from zoo.hub.snapshots import Hub

ROUTERS = ("arrow", "phatgoose")


@dataclass(frozen=True)
class Candidate:
    """One candidate to build; ``members`` are ``(repo_id, sha)`` in merge / library order."""

    name: str
    kind: str
    members: list[tuple[str, str]]
    base_model: str
    base_revision: str
    method: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    clustering_id: str | None = None
    cluster: int | None = None

    @property
    def key(self) -> str:
        content = {"kind": self.kind, "method": self.method, "settings": self.settings, "base_model": self.base_model,
                   "base_revision": self.base_revision, "members": [f"{r}@{s}" for r, s in self.members]}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def artifact(self) -> str | None:
        """Folder under the candidates directory; ``None`` for the base, which needs none."""
        if self.kind == "base":
            return None
        return f"{self.key}/{LIBRARY if self.kind in ROUTERS else ADAPTER}"

    def row(self) -> dict[str, Any]:
        return {"candidate_key": self.key, "base_model": self.base_model, "base_revision": self.base_revision,
                "name": self.name, "kind": self.kind, "method": self.method, "clustering_id": self.clustering_id,
                "cluster": self.cluster, "members": [f"{r}@{s}" for r, s in self.members], "settings": self.settings,
                "artifact": self.artifact, "created_at": datetime.now(UTC)}


@dataclass(frozen=True)
class CandidateChoices:
    """Which candidates to build: baselines, per-cluster merges and libraries, libraries over everything."""

    merge_methods: list[str] = field(default_factory=lambda: ["linear", "ties"])
    routers: list[str] = field(default_factory=lambda: list(ROUTERS))
    experts: bool = True           # single experts (they give the oracle reference)
    uniform: bool = True           # the uniform merge of everything (a baseline)
    libraries_over_all: bool = True
    merge_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method, e.g. {"ties": {"density": .3}}
    router_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per router, over the defaults


@task(name="plan candidates", cache_policy=NO_CACHE)
def plan_candidates(catalog_path: Path, base_model: str, base_revision: str, clustering_id: str,
                    choices: CandidateChoices) -> list[Candidate]:
    """The candidates of one clustering, in a fixed order, without duplicates."""
    from zoo.eval.plan import ARROW_DEFAULTS, PHATGOOSE_DEFAULTS

    unknown = set(choices.routers) - set(ROUTERS)
    if unknown:
        raise ValueError(f"unknown routers {sorted(unknown)}; choose from {ROUTERS}")
    with open_catalog(catalog_path) as cat:
        members = records.clustering_members(cat, clustering_id)
    everyone = sorted((m["repo_id"], m["sha"]) for m in members)
    clusters: dict[int, list[tuple[str, str]]] = {}
    for m in members:
        clusters.setdefault(m["cluster"], []).append((m["repo_id"], m["sha"]))
    router_defaults = {"arrow": ARROW_DEFAULTS, "phatgoose": PHATGOOSE_DEFAULTS}
    common = {"base_model": base_model, "base_revision": base_revision}
    out = [Candidate("base", "base", [], **common)]
    if choices.experts:
        out += [Candidate(repo_id, "expert", [(repo_id, sha)], **common) for repo_id, sha in everyone]
    if choices.uniform and len(everyone) > 1:
        out.append(Candidate("uniform-linear", "merge", everyone, method="linear", **common))
    groups = [(f"cluster{c}", group, c) for c, group in sorted(clusters.items()) if len(group) > 1]
    if choices.libraries_over_all and len(everyone) > 1:
        groups.append(("all", everyone, None))
    for label, group, c in groups:
        tag = {"clustering_id": clustering_id, "cluster": c}
        if c is not None:
            out += [Candidate(f"{label}-{method}", "merge", group, method=method,
                              settings=dict(choices.merge_options.get(method, {})), **tag, **common)
                    for method in choices.merge_methods]
        out += [Candidate(f"{label}-{router}", router, group,
                          settings={**router_defaults[router], **choices.router_settings.get(router, {})}, **tag,
                          **common)
                for router in choices.routers]
    unique: dict[str, Candidate] = {}
    for cand in out:
        unique.setdefault(cand.key, cand)
    return list(unique.values())


@task(name="find built candidates", cache_policy=NO_CACHE)
def built_keys(catalog_path: Path, keys: Sequence[str]) -> set[str]:
    with open_catalog(catalog_path) as cat:
        return records.present_keys(cat, "candidates", "candidate_key", keys)


class BuildContext:
    """What building needs, fetched once and only when needed: member folders, their data, the base model."""

    def __init__(self, hub: Hub, base_model: str, base_revision: str, datasets: Mapping[str, list[str]],
                 device: str) -> None:
        self.hub, self.base_model, self.base_revision = hub, base_model, base_revision
        self.datasets, self.device = datasets, device
        self._folders: dict[tuple[str, str], Path] = {}
        self._data: dict[str, Any] = {}
        self._model: tuple[Any, Any] | None = None

    def folder(self, repo_id: str, sha: str) -> Path:
        from zoo.hub.snapshots import adapter_snapshot

        if (repo_id, sha) not in self._folders:
            self._folders[(repo_id, sha)] = adapter_snapshot(self.hub, repo_id, sha)
        return self._folders[(repo_id, sha)]

    def data(self, repo_id: str) -> Any:
        """The expert's training data (``zoo.hub.snapshots.ExpertData``) or ``None`` when unknown."""
        from zoo.hub.snapshots import expert_data

        if repo_id not in self._data:
            self._data[repo_id] = expert_data(self.hub, self.datasets.get(repo_id, []))
        return self._data[repo_id]

    def model(self) -> tuple[Any, Any]:
        """The base model and tokenizer (PHATGOOSE gate training), loaded once."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from zoo.hub.snapshots import base_model_snapshot

        if self._model is None:
            folder, _ = base_model_snapshot(self.hub, self.base_model, self.base_revision)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder).to(self.device)
            self._model = (model, tokenizer)
        return self._model


@task(name="build candidate", tags=["build"], cache_policy=NO_CACHE)
def build_candidate(catalog_path: Path, candidates_dir: Path, candidate: Candidate, context: BuildContext) -> str:
    """Write the candidate's folder (merging, gate training) and record it; returns its key."""
    from zoo import candidate_artifacts as artifacts
    from zoo.adapters import load_adapter
    from zoo.library import MemberSource

    if candidate.artifact is not None:
        target = candidates_dir / candidate.artifact
        folders = [context.folder(r, s) for r, s in candidate.members]
        if candidate.kind == "expert":
            artifacts.save_expert(folders[0], target)
        elif candidate.kind == "merge":
            artifacts.save_merge(folders, candidate.method or "linear", candidate.settings, target,
                                 candidate.base_model)
        else:
            sources = [MemberSource(f, repo_id=r, revision=s, name=r, labels=_labels(context.data(r)))
                       for f, (r, s) in zip(folders, candidate.members, strict=True)]
            router, gates = candidate.settings, None
            if candidate.kind == "phatgoose":
                router, training = artifacts.split_phatgoose_settings(candidate.settings)
                examples = {i: context.data(r) for i, (r, _) in enumerate(candidate.members)}
                pairs = {i: _pairs(d.train_file) for i, d in examples.items() if d is not None}
                if pairs:
                    model, tokenizer = context.model()
                    gates = artifacts.train_gates(model, tokenizer, [load_adapter(f) for f in folders], pairs,
                                                  training)
            artifacts.save_routed_library(sources, candidate.kind, router, target, candidate.base_model,
                                          candidate.base_revision, gates=gates)
    with open_catalog(catalog_path) as cat:
        records.store_candidate(cat, candidate.row())
    return candidate.key


def _labels(data: Any) -> dict[str, str]:
    return dict(data.labels) if data is not None else {}


def _pairs(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["prompt"], r["target"]) for r in rows if isinstance(r.get("prompt"), str)
            and isinstance(r.get("target"), str)]


def choices_from_json(raw: Mapping[str, Any] | None) -> CandidateChoices:
    """Flow parameters are JSON: build the choices from a plain dict (unknown keys are an error)."""
    known = set(asdict(CandidateChoices()))
    unknown = set(raw or {}) - known
    if unknown:
        raise ValueError(f"unknown candidate options {sorted(unknown)}; known: {sorted(known)}")
    return CandidateChoices(**(raw or {}))
