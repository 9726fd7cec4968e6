"""Seeds derived from names, stable across processes and machines (Python's ``hash()`` is salted)."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the ``str()`` of ``parts``: same inputs, same seed, everywhere."""
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1
