"""Does an adapter fit its base model? Checked on shapes, with the base's safetensors headers.

A LoRA delta for module ``m`` is ``d_out x d_in``; it only applies to a base whose ``m.weight`` has
that shape (transposed for ``fan_in_fan_out`` bases such as GPT-2). The base's shapes come from
the headers of its weight files on the same hub, read once per crawl and shared by all adapters of
that base, so the check costs no request per adapter.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id

from zoo.crawl.http import HubHttp, HubRefused, HubUnavailable, json_body, whole_body
from zoo.crawl.records import ModuleShape
from zoo.crawl.safetensors_header import SafetensorsError, read_header

INDEX_FILE = "model.safetensors.index.json"
Shapes = Mapping[str, tuple[int, ...]]


class BaseModelShapes:
    """Weight shapes per base model id, fetched on first use (once even when threads ask together)."""

    def __init__(self, http: HubHttp) -> None:
        self.http = http
        self._lock = threading.Lock()
        self._per_base: dict[str, threading.Lock] = {}
        self._known: dict[str, Shapes | str] = {}

    def shapes(self, base_id: str) -> Shapes | str:
        """``{tensor name: shape}`` of the base's weights, or a sentence saying why they are unknown."""
        with self._lock:
            lock = self._per_base.setdefault(base_id, threading.Lock())
        with lock:
            if base_id not in self._known:
                self._known[base_id] = self._read(base_id)
            return self._known[base_id]

    def _read(self, base_id: str) -> Shapes | str:
        try:
            validate_repo_id(base_id)
        except HFValidationError:
            return f"base model {base_id!r} is not a hub repo id"
        try:
            return _weight_shapes(self.http, base_id)
        except HubRefused as err:
            return f"base model {base_id} not readable ({err})"
        except HubUnavailable as err:
            return f"base model {base_id} unavailable ({err})"
        except (SafetensorsError, ValueError) as err:
            return f"base model {base_id} weights unreadable ({err})"


def _weight_shapes(http: HubHttp, base_id: str) -> Shapes | str:
    info = http.get(
        f"{http.endpoint}/api/models/{base_id}",
        what=f"{base_id} info",
        params=[("expand", "sha"), ("expand", "siblings")],
        parse=json_body,
    )
    sha = info.get("sha")
    files = {s["rfilename"] for s in info.get("siblings") or [] if isinstance(s, dict) and "rfilename" in s}
    if INDEX_FILE in files:
        index = http.get(http.file_url(base_id, INDEX_FILE, sha), what=f"{base_id} {INDEX_FILE}", parse=whole_body)
        weight_map = _json_object(index).get("weight_map") or {}
        shards = sorted(set(weight_map.values()) & files)
    else:
        shards = sorted(name for name in files if name.endswith(".safetensors") and "/" not in name)
    if not shards:
        return f"base model {base_id} has no safetensors weights"
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in shards:
        header = read_header(http, http.file_url(base_id, shard, sha), what=f"{base_id} {shard}")
        shapes.update({name: entry.shape for name, entry in header.tensors.items()})
    return shapes


def _json_object(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def base_fit(modules: list[ModuleShape], base: Shapes, fan_in_fan_out: bool) -> tuple[str, str | None]:
    """``(base_check, mismatch reason)``: 'fits', 'mismatch' with the first offending module, or 'unchecked: ...'.

    A module the base's files do not name (a tied ``lm_head``, another naming convention) leaves the
    adapter unchecked rather than condemned.
    """
    absent = []
    for m in modules:
        shape = _base_weight(base, m.module)
        if shape is None:
            absent.append(m.module)
            continue
        expected = (m.d_in, m.d_out) if fan_in_fan_out else (m.d_out, m.d_in)
        if tuple(shape) != expected:
            found = "x".join(map(str, shape))
            return "mismatch", f"{m.module}: LoRA delta is {m.d_out}x{m.d_in} but the base weight is {found}"
    if absent:
        return f"unchecked: {len(absent)} of {len(modules)} modules not in the base weights, e.g. {absent[0]}", None
    return "fits", None


def _base_weight(base: Shapes, module: str) -> tuple[int, ...] | None:
    for name in (module, module.removeprefix("model."), f"model.{module}"):
        if f"{name}.weight" in base:
            return base[f"{name}.weight"]
    return None
