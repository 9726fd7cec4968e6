"""Names MLflow accepts, derived from hub repo ids, task names and settings.

Experiments and registered models: ``recycled--<base model>[--<suite>]``, where each ``/``-separated part
of a name keeps ``A-Z a-z 0-9 . _ -`` and every other run of characters becomes ``-``, and the parts are
joined with ``--`` (``zoo-base/llama-tiny`` -> ``zoo-base--llama-tiny``). Registered model names may not
hold ``/`` or ``:``, and one rule for both keeps a base model's experiment and models side by side.

Metric, param and tag keys: each ``/``-separated part keeps ``A-Z a-z 0-9 . _ - space`` and every other
character becomes ``_`` (MLflow refuses the rest, and a ``/`` would nest a task name one level deeper).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PREFIX = "recycled"
MAX_KEY = 250  # MLflow's limit on metric, param and tag keys
_NAME_DROP = re.compile(r"[^A-Za-z0-9._-]+")
_KEY_DROP = re.compile(r"[^A-Za-z0-9._\- ]")


def experiment_name(base_model: str) -> str:
    """The experiment that holds every candidate run of one base model."""
    return f"{PREFIX}--{_slug(base_model)}"


def registered_model_name(base_model: str, suite_name: str) -> str:
    """The registered model whose ``champion`` is the best candidate for one base model on one suite."""
    return f"{PREFIX}--{_slug(base_model)}--{_slug(suite_name)}"


def _slug(text: str) -> str:
    parts = [_NAME_DROP.sub("-", part).strip("-") for part in text.split("/")]
    slug = "--".join(p for p in parts if p)
    if not slug.strip("._-"):
        raise ValueError(f"{text!r} leaves nothing usable in an MLflow name")
    return slug


def metric_key(name: str) -> str:
    """``name`` with every ``/``-separated part made safe (``em/strings:reverse`` -> ``em/strings_reverse``)."""
    parts = [_KEY_DROP.sub("_", part) for part in name.split("/")]
    key = "/".join("_" if p in ("", ".", "..") else p for p in parts)
    if len(key) > MAX_KEY:
        raise ValueError(f"key {key[:40]}... is longer than MLflow's {MAX_KEY} characters")
    return key


def safe_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` under :func:`metric_key` names; two names that become one key are refused, not merged."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in values.items():
        key = metric_key(name)
        if key in out:
            raise ValueError(f"{origin[key]!r} and {name!r} both become the MLflow key {key!r}")
        out[key], origin[key] = value, name
    return out


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level of dotted keys (``{"router": {"top_k": 2}}`` -> ``router.top_k``)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def truncated(text: str, limit: int, note: str) -> str:
    """``text`` cut to ``limit`` characters with ``note`` at the end, when it is longer."""
    if len(text) <= limit:
        return text
    return text[: limit - len(note)] + note
