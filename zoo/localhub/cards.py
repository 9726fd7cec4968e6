"""Repo cards: the YAML front matter of README.md, and the tags the hub derives from it.

The real hub computes a repo's ``tags`` from its card (``library_name``, ``base_model:<id>``,
``license:<x>``, ``dataset:<id>``, the card's own ``tags``, ...). Crawlers filter on those tags, so the
local hub derives them the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import yaml

log = logging.getLogger(__name__)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_CARD_NODES = 100_000


def parse_front_matter(text: str) -> dict[str, Any] | None:
    """The YAML mapping between a leading ``---`` line and the next ``---`` line, or None.

    Malformed YAML is not an error of the server: the repo is served without card data, as the hub does.
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return None
    try:
        data = yaml.load("\n".join(lines[1:end]), Loader=_Loader)  # noqa: S506 (a safe loader)
        return _jsonable(data, [_MAX_CARD_NODES]) if isinstance(data, dict) else None
    except (yaml.YAMLError, RecursionError, _CardTooLarge) as err:
        log.warning("ignoring unusable card front matter: %s", type(err).__name__)
        return None


class _CardTooLarge(Exception):
    """YAML aliases can expand a few lines into billions of nodes ("billion laughs")."""


def _jsonable(value: Any, budget: list[int]) -> Any:
    """YAML gives dates, non-string keys and NaN; the JSON API needs plain JSON values."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _CardTooLarge
    if isinstance(value, dict):
        return {str(k): _jsonable(v, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, budget) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinity
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def derive_tags(repo_type: str, card: dict[str, Any], library_name: str | None, file_names: list[str]) -> list[str]:
    """Tags in the hub's style (models: bare language codes; datasets: ``key:value``), deduplicated, in order."""
    tags: list[str] = []
    if repo_type == "model":
        if library_name:
            tags.append(library_name)
        if any(name.endswith(".safetensors") for name in file_names):
            tags.append("safetensors")
        tags += _as_list(card.get("tags"))
        if card.get("pipeline_tag"):
            tags.append(str(card["pipeline_tag"]))
        tags += [f"dataset:{d}" for d in _as_list(card.get("datasets"))]
        relation = _base_model_relation(card, library_name, file_names)
        for base in _as_list(card.get("base_model")):
            tags += [f"base_model:{base}", f"base_model:{relation}:{base}"]
        tags += _as_list(card.get("language"))
    else:
        tags += _as_list(card.get("tags"))
        for key in ("task_categories", "task_ids", "size_categories", "language"):
            tags += [f"{key}:{v}" for v in _as_list(card.get(key))]
    tags += [f"license:{lic}" for lic in _as_list(card.get("license"))]
    return list(dict.fromkeys(tags))


def _base_model_relation(card: dict[str, Any], library_name: str | None, file_names: list[str]) -> str:
    """The card's ``base_model_relation``, else inferred as the hub does: PEFT repos are adapters."""
    if card.get("base_model_relation"):
        return str(card["base_model_relation"])
    if library_name == "peft" or "adapter_config.json" in file_names:
        return "adapter"
    return "finetune"


def infer_library(card: dict[str, Any], file_names: list[str]) -> str | None:
    """The card's ``library_name``, else what the files say (the hub infers it the same way)."""
    if card.get("library_name"):
        return str(card["library_name"])
    if "adapter_config.json" in file_names:
        return "peft"
    if "config.json" in file_names:
        return "transformers"
    return None
