"""Routers by name: each plug-in folder registers its :class:`~zoo.routing.router.Router` here on import.

Settings travel as plain JSON (a manifest's ``router.settings``, a candidate's settings); this module
turns them into a router's config objects and back, and refuses unknown keys with the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from zoo.registry import Registry
from zoo.routing.router import Router

ROUTERS: Registry[Router] = Registry("router")


def register_router(router: Router) -> Router:
    """Add ``router`` under its name (a plug-in calls this once, in its ``__init__``)."""
    return ROUTERS.add(router.name, router)


def get_router(name: str) -> Router:
    """The registered router ``name``; the error lists the known ones."""
    return ROUTERS.known(name)


def router_config(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """Router ``name``'s config from plain settings (a manifest's ``router.settings``)."""
    return _build(name, get_router(name).config_class, dict(settings or {}))


def split_settings(name: str, settings: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """A candidate's settings as ``(config, fit_config)``: the router's own keys and its fitting keys
    (``fit_config`` is ``None`` for routers that fit without settings). Unknown keys are an error."""
    router = get_router(name)
    settings = dict(settings or {})
    fit_keys = {f.name for f in fields(router.fit_class)} if router.fit_class else set()
    config = _build(name, router.config_class, {k: v for k, v in settings.items() if k not in fit_keys})
    fit = _build(name, router.fit_class, {k: v for k, v in settings.items() if k in fit_keys}) if router.fit_class \
        else None
    return config, fit


def default_settings(name: str) -> dict[str, Any]:
    """Every setting of router ``name`` (config and fitting) at its default: what a plan starts from."""
    router = get_router(name)
    fit = asdict(router.fit_class()) if router.fit_class else {}
    return {**asdict(router.config_class()), **fit}


def config_settings(config: Any) -> dict[str, Any]:
    """A router config as plain JSON-able settings (the inverse of :func:`router_config`)."""
    return asdict(config)


def _build(name: str, cls: type, settings: dict[str, Any]) -> Any:
    try:
        return cls(**settings)
    except TypeError as err:
        known = sorted(f.name for f in fields(cls))
        raise ValueError(f"bad settings for router {name!r}: {err}; known settings: {known}") from err
