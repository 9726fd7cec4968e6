"""Content keys: the one rule that turns "what a thing computes" into the key it is cached and stored under.

Every key in the catalog (clusterings, candidates, evaluations) is this hash of a JSON document, so the
same content gives the same key in any process, and a key never depends on dict order or whitespace.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_HEX_DIGITS = 16


def canonical_json(content: Any) -> str:
    """``content`` as JSON with sorted keys, no whitespace and ASCII only: equal content, equal text."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def content_key(content: Any) -> str:
    """The first 16 hex digits of the sha256 of :func:`canonical_json` (a JSON-able value)."""
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()[:KEY_HEX_DIGITS]
