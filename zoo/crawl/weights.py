"""Are all weight values finite? Needs the data, so only the ``--verify-weights`` mode downloads it.

The check reads the raw bytes with numpy by bit pattern (an all-ones exponent is NaN or inf), so it
works for bf16 too and never deserialises anything but plain numbers.
"""

from __future__ import annotations

import numpy as np

from zoo.crawl.safetensors_header import SafetensorsHeader

# dtype -> (unsigned view, exponent mask): a value is NaN or inf exactly when all exponent bits are set.
_EXPONENT_MASKS = {
    "F16": (np.uint16, 0x7C00),
    "BF16": (np.uint16, 0x7F80),
    "F32": (np.uint32, 0x7F800000),
    "F64": (np.uint64, 0x7FF0000000000000),
}


def nonfinite_tensors(data: bytes, header: SafetensorsHeader) -> list[str]:
    """Names of the float tensors holding a NaN or an infinity."""
    bad = []
    for entry in sorted(header.tensors.values(), key=lambda e: e.name):
        mask = _EXPONENT_MASKS.get(entry.dtype)
        if mask is None:
            continue
        view, exponent = mask
        values = np.frombuffer(data, dtype=view, count=entry.numel, offset=header.data_start + entry.begin)
        if np.any((values & view(exponent)) == view(exponent)):
            bad.append(entry.name)
    return bad
