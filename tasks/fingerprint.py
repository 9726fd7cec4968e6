"""Prefect tasks of ``fingerprint``: download each new adapter once, store what later steps need.

A failure (download, or weights the loader refuses) is recorded with its reason and does not stop the
others; a failed fingerprint is tried again on the next run, an ``ok`` one never (same commit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from zoo.hub.adapter_ids import adapter_id, subfolder_problem
from zoo.hub.snapshots import Hub, adapter_snapshot
from zoo.similarity.fingerprint import FINGERPRINT_VERSION, fingerprint_adapter


def recyclable(cat: Catalog, base_model: str) -> list[dict[str, Any]]:
    """The catalog's supported adapters of ``base_model`` with their ``adapter_id`` (the name everything
    downstream knows them by), one per adapter folder; a folder no id can name (read by an older crawler)
    is left out."""
    rows = records.recyclable_adapters(cat, base_model)
    return [{**r, "adapter_id": adapter_id(r["repo_id"], r["subfolder"])} for r in rows
            if not (r["subfolder"] and subfolder_problem(r["repo_id"], r["subfolder"]))]


@task(name="plan fingerprints", cache_policy=NO_CACHE)
def plan_fingerprints(catalog_path: Path, base_model: str, sketch_size: int, seed: int) -> tuple[list[dict], int]:
    """The supported adapters of ``base_model`` lacking an ``ok`` fingerprint with these sketch settings,
    and how many have one."""
    with Catalog.open(catalog_path) as cat:
        adapters = recyclable(cat, base_model)
        done = records.fingerprinted(cat, FINGERPRINT_VERSION)
    wanted = {"status": "ok", "sketch_size": sketch_size, "sketch_seed": seed}
    todo = [a for a in adapters if done.get((a["repo_id"], a["subfolder"], a["sha"])) != wanted]
    return todo, len(adapters) - len(todo)


@task(name="fingerprint adapter", tags=["hub", "fingerprint"], cache_policy=NO_CACHE)
def fingerprint_one(catalog_path: Path, hub: Hub, base_model: str, repo_id: str, sha: str,
                    sketch_size: int, seed: int, subfolder: str = "") -> str:
    """Download, fingerprint and store one adapter (the one in ``subfolder`` of the repo, '' for its root);
    returns ``ok`` or ``failed``."""
    from zoo.adapters import load_adapter

    key = {"repo_id": repo_id, "subfolder": subfolder, "sha": sha, "version": FINGERPRINT_VERSION}
    row = {**key, "base_model": base_model, "sketch_size": sketch_size, "sketch_seed": seed}
    try:
        adapter = load_adapter(adapter_snapshot(hub, repo_id, sha, subfolder))
        fp = fingerprint_adapter(adapter, sketch_size, seed)
    except Exception as err:  # noqa: BLE001  (any failure is this adapter's record, not the run's end)
        with Catalog.open(catalog_path) as cat:
            records.store_fingerprint(cat, {**row, "status": "failed", "reason": f"{type(err).__name__}: {err}"}, [])
        return "failed"
    modules = [{**key, **vars(m)} for m in fp.modules]
    with Catalog.open(catalog_path) as cat:
        records.store_fingerprint(cat, {**row, "status": "ok", "norm": fp.norm, "module_count": len(fp.modules),
                                        "parameter_count": fp.parameter_count}, modules)
    return "ok"
