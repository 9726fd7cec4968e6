"""The hub as the recycling tasks see it: endpoint and token from the settings, files cached under ZOO_HOME.

The token is read here, never passed as a parameter, so it cannot reach the Prefect API or a log.
"""

from __future__ import annotations

from zoo.hub.snapshots import Hub
from zoo.settings import load_settings


def hub_from_settings(endpoint: str | None = None) -> Hub:
    settings = load_settings()
    return Hub(endpoint=endpoint or settings.hf_endpoint, cache_dir=settings.hub_cache, token=settings.hf_token)
