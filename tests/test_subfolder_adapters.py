"""Adapters in subfolders of a repo (PEFT's named adapters) downstream of the crawl: fingerprinted, clustered,
built into merges and libraries as experts of their own, named ``repo_id/subfolder``, each downloaded alone.

Real parts throughout: the adapters are saved by PEFT, served by the realistic local hub, crawled, fingerprinted,
clustered and built by the Prefect flows into a real DuckDB catalog.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import prefect_server
import pytest
import torch
from lora_testing import dense

from catalog import Catalog
from zoo.localhub import Realism, serve_in_thread

BASE = "zoo-base/llama-tiny"
ROOT_EXPERT = "lora-lab/llama-tiny-reverse-lora-r8"
NAMED = "peft-user/llama-tiny-named"  # holds no adapter at its root: only french/ and german/
NAMES = ("french", "german")
CHOICES = {"experts": True, "uniform": True, "merge_methods": ["linear"], "routers": ["arrow"],
           "libraries_per_cluster": False, "libraries_over_all": True}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with prefect_server.prefect_api(tmp_path_factory.mktemp("prefect-server")) as api_url:
        yield api_url


def _named_peft_adapters(base_dir: Path, repo: Path) -> None:
    """Two named LoRA adapters on one model, saved by PEFT itself: it writes each into ``<name>/``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    configs = {"french": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
               "german": LoraConfig(r=2, lora_alpha=4, target_modules=["k_proj", "o_proj", "v_proj"],
                                    init_lora_weights=False)}
    peft_model = get_peft_model(model, configs["french"], adapter_name="french")
    peft_model.add_adapter("german", configs["german"])
    peft_model.save_pretrained(repo)
    (repo / "README.md").write_text(f"---\nbase_model: {BASE}\nlibrary_name: peft\ntags:\n- lora\n---\n\n# {NAMED}\n")


@pytest.fixture(scope="module")
def recycled(tiny_zoo: Path, tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict]:
    """A hub of the base, one adapter at its repo's root and a repo of two named adapters, crawled,
    fingerprinted, clustered and built (merges and an Arrow library over all)."""
    from flows.build_candidates import build_candidates
    from flows.cluster import cluster_adapters
    from flows.crawl import crawl_hub
    from flows.fingerprint import fingerprint

    tmp = tmp_path_factory.mktemp("subfolders")
    root = tmp / "hub"
    for repo in (BASE, ROOT_EXPERT):
        shutil.copytree(tiny_zoo / repo, root / repo)
    _named_peft_adapters(root / BASE, root / NAMED)
    catalog = str(tmp / "catalog.duckdb")
    with serve_in_thread(root, realism=Realism()) as url:
        crawl_hub(endpoint=url, catalog_path=catalog)
        counts = fingerprint(BASE, endpoint=url, catalog_path=catalog)
        clustering = cluster_adapters(BASE, k=2, catalog_path=catalog)
        keys = build_candidates(BASE, clustering, options=CHOICES, endpoint=url, catalog_path=catalog, device="cpu")
        yield {"root": root, "url": str(url), "catalog": catalog, "counts": counts, "clustering": clustering,
               "keys": keys, "tmp": tmp}


def _query(catalog: str, sql: str, params: list | None = None) -> list[dict]:
    with Catalog.open(catalog, read_only=True) as cat:
        return cat.query(sql, params or []).to_pylist()


def test_both_named_adapters_are_fingerprinted_and_clustered(recycled: dict) -> None:
    assert recycled["counts"]["ok"] == 3 and recycled["counts"]["failed"] == 0
    prints = _query(recycled["catalog"], "SELECT repo_id, subfolder, status, module_count FROM adapter_fingerprints "
                                         "ORDER BY repo_id, subfolder")
    assert [(p["repo_id"], p["subfolder"], p["status"]) for p in prints] == [
        (ROOT_EXPERT, "", "ok"), (NAMED, "french", "ok"), (NAMED, "german", "ok")]
    assert [p["module_count"] for p in prints][1:] == [2 * 2, 3 * 2]  # q,v / k,o,v on both layers of the tiny base
    members = _query(recycled["catalog"], "SELECT repo_id, subfolder FROM cluster_members WHERE clustering_id = ? "
                                          "ORDER BY repo_id, subfolder", [recycled["clustering"]])
    assert [(m["repo_id"], m["subfolder"]) for m in members] == [(ROOT_EXPERT, ""), (NAMED, "french"), (NAMED, "german")]


def test_the_uniform_merge_is_built_from_each_named_adapters_own_weights(recycled: dict) -> None:
    from zoo.adapters import load_adapter
    from zoo.settings import load_settings

    rows = {r["name"]: r for r in _query(recycled["catalog"], "SELECT * FROM candidates")}
    assert {f"{NAMED}/french", f"{NAMED}/german", ROOT_EXPERT} <= set(rows)  # single experts, by adapter id
    merge = rows["uniform-merge"]
    sha = _query(recycled["catalog"], "SELECT sha FROM hub_repos WHERE repo_id = ?", [NAMED])[0]["sha"]
    assert {f"{NAMED}/french@{sha}", f"{NAMED}/german@{sha}"} <= set(json.loads(merge["members"]))
    merged = dense(load_adapter(load_settings().candidates_dir / merge["artifact"]))
    sources = [dense(load_adapter(recycled["root"] / folder)) for folder in (ROOT_EXPERT, f"{NAMED}/french",
                                                                             f"{NAMED}/german")]
    having = {m: [s[m] for s in sources if m in s] for s in sources for m in s}
    expected = {m: sum(deltas) / len(deltas) for m, deltas in having.items()}  # linear: over those adapting m
    assert set(merged) == set(expected)
    for module, delta in expected.items():
        assert torch.allclose(merged[module], delta, atol=1e-5), module


def test_the_library_manifest_names_each_member_by_repo_and_folder(recycled: dict) -> None:
    from zoo.library import load_library
    from zoo.settings import load_settings

    row = _query(recycled["catalog"], "SELECT artifact FROM candidates WHERE name = 'all-arrow'")[0]
    library = load_library(load_settings().candidates_dir / row["artifact"])
    named = {m.name: m for m in library.manifest.members}
    assert named[f"{NAMED}/german"].repo_id == NAMED and named[f"{NAMED}/german"].subfolder == "german"
    assert named[ROOT_EXPERT].subfolder == ""
    counts = {m.name: len(e.modules) for m, e in zip(library.manifest.members, library.experts, strict=True)}
    assert (counts[f"{NAMED}/french"], counts[f"{NAMED}/german"]) == (2 * 2, 3 * 2)  # each its own folder's weights


def test_a_named_adapter_is_downloaded_alone(recycled: dict) -> None:
    from zoo.hub.snapshots import Hub, adapter_snapshot

    sha = _query(recycled["catalog"], "SELECT sha FROM hub_repos WHERE repo_id = ?", [NAMED])[0]["sha"]
    folder = adapter_snapshot(Hub(endpoint=recycled["url"], cache_dir=recycled["tmp"] / "cache"), NAMED, sha, "german")
    assert folder.name == "german"
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["german"]  # not french/, not the card
