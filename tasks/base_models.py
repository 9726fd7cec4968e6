"""Prefect tasks about the base models being recycled: which ones, at which commit, their files.

Hub reads retry (a hub that is briefly down or rate-limiting should not fail a daily run); the token is
read from the settings inside ``hub_from_settings`` and never travels as a parameter.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import Catalog
from catalog import recycle_records as records
from tasks.hub import hub_from_settings
from zoo.hub.snapshots import base_model_snapshot, current_revision


@task(name="find recyclable base models", cache_policy=NO_CACHE)
def recyclable_base_models(catalog_path: Path) -> list[str]:
    """Base models with 2+ usable adapters in the catalog, most adapters first."""
    with Catalog.open(catalog_path) as cat:
        return records.recyclable_base_models(cat)


@task(name="read base model revision", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def current_base_revision(endpoint: str | None, base_model: str) -> str:
    """The commit the base model's repo is at now (candidates are pinned to it)."""
    return current_revision(hub_from_settings(endpoint), base_model)


@task(name="download base model", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def base_model_folder(endpoint: str | None, base_model: str, revision: str) -> Path:
    """A local folder of the base model at ``revision`` (config, tokenizer, safetensors), cached."""
    folder, _ = base_model_snapshot(hub_from_settings(endpoint), base_model, revision)
    return folder
