"""Why an adapter cannot be used: the reason travels with the error so the catalog can record it."""

from __future__ import annotations


class AdapterError(Exception):
    """Base of every refusal; ``reason`` is a short, human-readable cause (also the message)."""

    status = "error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedAdapter(AdapterError):
    """A well-formed adapter that cannot be represented as plain LoRA factors (DoRA, bias, IA3, ...)."""

    status = "unsupported"


class InvalidAdapter(AdapterError):
    """A malformed adapter: missing or ill-typed config fields, missing or non-finite weights."""

    status = "invalid"
