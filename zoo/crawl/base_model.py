"""Does an adapter fit its base model? Checked on shapes, with the base's safetensors headers.

A LoRA delta for module ``m`` is ``d_out x d_in``; it only applies to a base whose ``m.weight`` has
that shape (transposed for ``fan_in_fan_out`` bases such as GPT-2). The base's shapes come from
the headers of its weight files on the same hub, read once per crawl and shared by all adapters of
that base, so the check costs no request per adapter.

Real bases are not always that plain. A bitsandbytes 4-bit checkpoint stores packed uint8 weights
(``[N, 1]``, with ``*.quant_state.*`` siblings): those say nothing about shapes, so they are left out,
and the shapes come instead from the unquantised base its card names and from its ``config.json``.
A gated base's files may be refused to the crawl's credentials: the adapter is then unchecked, and read
again by a crawl with other credentials (``denied``), as gated adapters are.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id

from zoo.crawl.config_shapes import config_shapes, is_quantised
from zoo.crawl.http import HubHttp, HubRefused, HubUnavailable, json_body, whole_body
from zoo.crawl.records import ModuleShape
from zoo.crawl.safetensors_header import SafetensorsError, read_header

INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
PACKED_DTYPES = frozenset({"U8", "I8"})  # bitsandbytes 4-bit and 8-bit storage
QUANT_STATE_MARKERS = (".quant_state.", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".SCB")
Shapes = Mapping[str, tuple[int, ...]]


class BaseModelShapes:
    """Weight shapes per base model id, fetched on first use (once even when threads ask together)."""

    def __init__(self, http: HubHttp) -> None:
        self.http = http
        self._lock = threading.Lock()
        self._per_base: dict[str, threading.Lock] = {}
        self._known: dict[str, Shapes | str] = {}
        self._denied: set[str] = set()

    def shapes(self, base_id: str, follow_card: bool = True) -> Shapes | str:
        """``{tensor name: shape}`` of the base's weights, or a sentence saying why they are unknown.

        ``follow_card``: a quantised base also takes the shapes of the unquantised base its card names.
        """
        key = base_id if follow_card else f"{base_id}\0plain"
        with self._lock:
            lock = self._per_base.setdefault(key, threading.Lock())
        with lock:
            if key not in self._known:
                self._known[key] = self._read(base_id, follow_card)
            return self._known[key]

    def denied(self, base_id: str) -> bool:
        """Whether the base's shapes are unknown because it was refused to this crawl's credentials (gated,
        private), rather than for a reason of its own: a fact of the credentials, not of the base."""
        with self._lock:
            return base_id in self._denied

    def _read(self, base_id: str, follow_card: bool) -> Shapes | str:
        try:
            validate_repo_id(base_id)
        except HFValidationError:
            return f"base model {base_id!r} is not a hub repo id"
        try:
            shapes, quantised, unquantised_id = _weight_shapes(self.http, base_id)
        except HubRefused as err:
            if err.access_denied:
                with self._lock:
                    self._denied.add(base_id)
            return f"base model {base_id} not readable ({err})"
        except HubUnavailable as err:
            return f"base model {base_id} unavailable ({err})"
        except (SafetensorsError, ValueError) as err:
            return f"base model {base_id} weights unreadable ({err})"
        if quantised and follow_card and unquantised_id not in (None, base_id):
            unquantised = self.shapes(unquantised_id, follow_card=False)
            if not isinstance(unquantised, str):
                shapes = {**unquantised, **shapes}
        return shapes or f"base model {base_id} has no readable safetensors weights or config"


def _weight_shapes(http: HubHttp, base_id: str) -> tuple[dict[str, tuple[int, ...]], bool, str | None]:
    """``(shapes, quantised, the base the card names)``: the headers' unpacked shapes over the config's.

    Files refused to the crawl's credentials (a gated base) add nothing; if all are refused, the refusal is raised.
    """
    info = http.get(
        f"{http.endpoint}/api/models/{base_id}",
        what=f"{base_id} info",
        params=[("expand", "sha"), ("expand", "siblings"), ("expand", "cardData")],
        parse=json_body,
    )
    sha = info.get("sha")
    files = {s["rfilename"] for s in info.get("siblings") or [] if isinstance(s, dict) and "rfilename" in s}
    card = info.get("cardData") if isinstance(info.get("cardData"), dict) else {}
    card_base = card.get("base_model")
    card_base = card_base[0] if isinstance(card_base, list) and card_base else card_base
    refusals: list[HubRefused] = []
    config: dict[str, Any] = {}
    headers: dict[str, tuple[int, ...]] = {}
    packed = False
    if CONFIG_FILE in files:
        try:
            config = _json_object(http.get(http.file_url(base_id, CONFIG_FILE, sha), what=f"{base_id} {CONFIG_FILE}",
                                           parse=whole_body))
        except HubRefused as err:
            refusals.append(err)
    try:
        headers, packed = _header_shapes(http, base_id, sha, files)
    except HubRefused as err:
        refusals.append(err)
    shapes = {**config_shapes(config), **headers}
    if not shapes and refusals:
        raise refusals[0]
    quantised = packed or is_quantised(config)
    return shapes, quantised, card_base if isinstance(card_base, str) else None


def _header_shapes(
    http: HubHttp, base_id: str, sha: str | None, files: set[str]
) -> tuple[dict[str, tuple[int, ...]], bool]:
    """Shapes of the safetensors weights, packed (quantised) tensors left out; and whether any was packed."""
    if INDEX_FILE in files:
        index = http.get(http.file_url(base_id, INDEX_FILE, sha), what=f"{base_id} {INDEX_FILE}", parse=whole_body)
        weight_map = _json_object(index).get("weight_map") or {}
        shards = sorted(set(weight_map.values()) & files)
    else:
        shards = sorted(name for name in files if name.endswith(".safetensors") and "/" not in name)
    shapes: dict[str, tuple[int, ...]] = {}
    packed = False
    for shard in shards:
        header = read_header(http, http.file_url(base_id, shard, sha), what=f"{base_id} {shard}")
        for name, entry in header.tensors.items():
            if entry.dtype in PACKED_DTYPES or any(marker in name for marker in QUANT_STATE_MARKERS):
                packed = True
            else:
                shapes[name] = entry.shape
    return shapes, packed


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
