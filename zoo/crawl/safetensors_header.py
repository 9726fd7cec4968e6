"""Reading a safetensors file's header over HTTP ``Range`` requests, never the whole file.

A safetensors file is ``u64 little-endian n | n bytes of JSON header | tensor data``. One ranged GET
of the first ``PROBE_BYTES`` nearly always holds the whole header (an adapter's header is a few
KiB); a longer header costs exactly one more ranged GET. The header is validated as the
``safetensors`` library would before loading: known dtypes, offsets that tile the data section.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import httpx2

from zoo.crawl.http import HubHttp, TransientHubError, whole_body

PROBE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class SafetensorsError(ValueError):
    """The bytes are not a well-formed safetensors file."""


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets into the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    data_start: int  # 8 + header length: where the data section begins in the file
    file_bytes: int


def read_header(http: HubHttp, url: str, what: str) -> SafetensorsHeader:
    """The validated header of the safetensors file at ``url`` (one ranged GET, two for huge headers)."""
    head, file_bytes = http.get(url, what=what, headers={"Range": f"bytes=0-{PROBE_BYTES - 1}"}, parse=_ranged)
    length = _header_length(head, file_bytes)
    if len(head) < 8 + length:
        rest, _ = http.get(url, what=what, headers={"Range": f"bytes={len(head)}-{7 + length}"}, parse=_ranged)
        head += rest
    return parse_header(head[8 : 8 + length], file_bytes)


def header_of_file(data: bytes) -> SafetensorsHeader:
    """The validated header of a whole safetensors file held in memory."""
    length = _header_length(data, len(data))
    return parse_header(data[8 : 8 + length], len(data))


def _header_length(head: bytes, file_bytes: int) -> int:
    if len(head) < 8:
        raise SafetensorsError(f"{file_bytes} bytes: too short for a safetensors file")
    (length,) = struct.unpack("<Q", head[:8])
    if length > MAX_HEADER_BYTES or 8 + length > file_bytes:
        raise SafetensorsError(f"header length {length} does not fit a {file_bytes}-byte file")
    return length


def parse_header(raw: bytes, file_bytes: int) -> SafetensorsHeader:
    """Validate the JSON header of a ``file_bytes``-byte safetensors file."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SafetensorsError(f"header is not valid JSON: {err}") from err
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise SafetensorsError("__metadata__ is not a JSON object")
    tensors = {name: _entry(name, info) for name, info in header.items()}
    data_start = 8 + len(raw)
    _check_tiling(tensors, file_bytes - data_start)
    return SafetensorsHeader(tensors=tensors, metadata=metadata, data_start=data_start, file_bytes=file_bytes)


def _entry(name: str, info: Any) -> TensorEntry:
    if not isinstance(info, dict):
        raise SafetensorsError(f"{name}: entry is not a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str):
        raise SafetensorsError(f"{name}: dtype missing")
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise SafetensorsError(f"{name}: shape must be a list of non-negative integers")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise SafetensorsError(f"{name}: data_offsets must be [begin, end] with 0 <= begin <= end")
    entry = TensorEntry(name=name, dtype=dtype, shape=tuple(shape), begin=offsets[0], end=offsets[1])
    itemsize = DTYPE_BYTES.get(dtype)
    if itemsize is not None and entry.end - entry.begin != entry.numel * itemsize:
        raise SafetensorsError(f"{name}: {entry.end - entry.begin} bytes for {dtype}{list(shape)}")
    return entry


def _check_tiling(tensors: dict[str, TensorEntry], data_bytes: int) -> None:
    """Tensors must tile the data section exactly (no gap, no overlap, nothing missing: a truncated file fails)."""
    position = 0
    for entry in sorted(tensors.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            raise SafetensorsError(f"{entry.name}: starts at byte {entry.begin} of the data, expected {position}")
        position = entry.end
    if position != data_bytes:
        raise SafetensorsError(f"tensors cover {position} bytes but the data section has {data_bytes}")


def _ranged(response: httpx2.Response) -> tuple[bytes, int]:
    """``(body, total file bytes)`` of a ranged GET; a body shorter than its range is fetched again."""
    if response.status_code != 206:
        body = whole_body(response)  # the server ignored Range and sent everything
        return body, len(body)
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or match[3] == "*":
        raise SafetensorsError("the hub answered a range request without a usable Content-Range")
    first, last, total = int(match[1]), int(match[2]), int(match[3])
    body = response.content
    if len(body) != last - first + 1:
        raise TransientHubError(f"range body of {len(body)} bytes for {last - first + 1} promised")
    return body, total
