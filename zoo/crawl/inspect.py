"""Reading one adapter repo at its listed commit: config, safetensors header, fit to the base.

A repo may hold several adapters: PEFT saves named adapters in ``<name>/`` and trainers leave
``checkpoint-*/``; each folder with an ``adapter_config.json`` is read as an adapter of its own.

Metadata-only (the default) costs two requests per adapter: ``adapter_config.json`` and one ranged
GET of the weight file's header. ``verify_weights`` then downloads the weight file too, to find NaN
or inf values that no header can show (files over ``MAX_VERIFY_BYTES`` stay unverified). Nothing is
unpickled and no file name from the hub is used as a local path: files are read into memory, by URL.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from zoo.adapters import AdapterConfig, AdapterError, InvalidAdapter, UnsupportedAdapter, parse_adapter_config
from zoo.adapters.files import CONFIG_NAME, PICKLE_WEIGHTS_NAME, WEIGHTS_NAME
from zoo.adapters.keys import module_name
from zoo.crawl.base_model import BaseModelShapes, base_fit
from zoo.crawl.http import HubHttp, HubRefused, HubUnavailable, whole_body
from zoo.crawl.lora_modules import lora_layout
from zoo.crawl.records import AdapterFacts, ListedRepo
from zoo.crawl.safetensors_header import SafetensorsError, SafetensorsHeader, header_of_file, read_header
from zoo.crawl.weights import nonfinite_tensors
from zoo.hub.adapter_ids import subfolder_problem

# Bump when the reading rules change, so that the next crawl re-reads adapters read by older rules.
READER_VERSION = 2
ACCESS_REFUSED = frozenset({"gated", "forbidden"})  # statuses that depend on the credentials, not the repo
MAX_CONFIG_BYTES = 1 << 20
MAX_VERIFY_BYTES = 2 << 30


def inspect_repo(
    http: HubHttp, repo: ListedRepo, bases: BaseModelShapes, verify_weights: bool = False
) -> list[AdapterFacts]:
    """The adapters ``repo`` holds at its listed commit, one per adapter folder (its root when none)."""
    return [inspect_adapter(http, repo, bases, verify_weights, folder) for folder in adapter_folders(repo.files)]


def adapter_folders(files: tuple[str, ...]) -> list[str]:
    """Folders holding an ``adapter_config.json`` ('' for the root), sorted; the root alone when there is none."""
    folders = {name.rpartition("/")[0] for name in files if name.rpartition("/")[2] == CONFIG_NAME}
    return sorted(folders) or [""]


def inspect_adapter(
    http: HubHttp, repo: ListedRepo, bases: BaseModelShapes, verify_weights: bool = False, subfolder: str = ""
) -> AdapterFacts:
    """What the adapter in ``subfolder`` of ``repo`` is at the listed commit. Never raises: whatever goes
    wrong becomes the recorded reason."""
    facts = AdapterFacts(repo_id=repo.repo_id, sha=repo.sha or "", reader_version=READER_VERSION, subfolder=subfolder)
    try:
        _read(http, repo, bases, verify_weights, facts)
    except AdapterError as err:
        facts.refuse(err.status, err.reason)
    except SafetensorsError as err:
        facts.refuse("invalid", f"{WEIGHTS_NAME}: {err}")
    except HubUnavailable as err:
        facts.refuse("failed", str(err))
    except HubRefused as err:
        facts.refuse(*_refusal(err))
        if facts.status in ACCESS_REFUSED:  # a fact of these credentials: other ones may read it
            facts.credentials = http.credentials
    except Exception as err:  # noqa: BLE001 (one repo's surprise must not stop the crawl)
        facts.refuse("failed", f"unexpected {type(err).__name__}: {err}")
    if facts.status in ("unsupported", "invalid"):
        facts.credentials = None  # settled by the files alone: other credentials would read the same
    return facts


def is_safe_repo_path(name: str) -> bool:
    """A relative, '/'-separated path that cannot leave the repo, even once percent-decoded.

    The crawler never joins hub names to local paths, but a repo naming such files is hostile (a
    client that unquotes ``..%2F..%2Fetc%2Fpasswd`` and saves it escapes its folder): refused.
    """
    return all(_is_relative_inside(candidate) for candidate in {name, unquote(name)})


def _is_relative_inside(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name or any(ord(c) < 0x20 for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _read(http: HubHttp, repo: ListedRepo, bases: BaseModelShapes, verify_weights: bool, facts: AdapterFacts) -> None:
    """Fill ``facts`` step by step; the first refusal raised stops the reading and becomes the reason."""
    prefix = f"{facts.subfolder}/" if facts.subfolder else ""
    _check_file_list(repo, prefix)
    if facts.subfolder and (problem := subfolder_problem(repo.repo_id, facts.subfolder)):
        raise UnsupportedAdapter(problem)  # downstream could not name it apart from other adapters
    facts.config = _read_config(http, repo, prefix + CONFIG_NAME)
    config = parse_adapter_config(facts.config)
    _record_config(facts, config)
    header, data = _read_weights(http, repo, prefix + WEIGHTS_NAME, verify_weights)
    facts.weight_file, facts.weight_bytes = prefix + WEIGHTS_NAME, header.file_bytes
    layout = lora_layout(header, config)
    facts.modules, facts.module_count = layout.modules, len(layout.modules)
    facts.dtype, facts.parameter_count = layout.dtype, layout.parameter_count
    _check_base(facts, repo, config, bases)
    if data is not None:
        bad = nonfinite_tensors(data, header)
        if bad:
            raise InvalidAdapter(f"{module_name(bad[0])}: LoRA weights contain NaN or inf")
        facts.weights_verified = True


def _check_file_list(repo: ListedRepo, prefix: str) -> None:
    """Refusals the listing alone decides, in the order ``zoo.adapters.load_adapter`` applies them."""
    unsafe = [name for name in repo.files if not is_safe_repo_path(name)]
    if unsafe:
        raise InvalidAdapter(f"unsafe file name in the repo's file list: {unsafe[0]!r}")
    if prefix + CONFIG_NAME not in repo.files:
        raise InvalidAdapter(f"{CONFIG_NAME} missing")
    if prefix + WEIGHTS_NAME not in repo.files:
        if prefix + PICKLE_WEIGHTS_NAME in repo.files:
            raise UnsupportedAdapter(f"only pickled weights ({PICKLE_WEIGHTS_NAME}); safetensors required")
        raise InvalidAdapter(f"{WEIGHTS_NAME} missing")


def _read_weights(
    http: HubHttp, repo: ListedRepo, name: str, verify_weights: bool
) -> tuple[SafetensorsHeader, bytes | None]:
    """The weight file's header by range; with ``verify_weights`` also the whole file (if under the cap)."""
    url = http.file_url(repo.repo_id, name, repo.sha)
    header = read_header(http, url, what=WEIGHTS_NAME)
    if not verify_weights or header.file_bytes > MAX_VERIFY_BYTES:
        return header, None
    data = http.get(url, what=WEIGHTS_NAME, parse=whole_body)
    return header_of_file(data), data


def _check_base(facts: AdapterFacts, repo: ListedRepo, config: AdapterConfig, bases: BaseModelShapes) -> None:
    """Shapes against the base model the card (else the config) names; a misfit is invalid."""
    base_id = repo.base_models[0] if repo.base_models else config.base_model_name_or_path
    if base_id is None:
        facts.base_check = "unchecked: no base model named"
        return
    shapes = bases.shapes(base_id)
    if isinstance(shapes, str):
        facts.base_check = f"unchecked: {shapes}"
        if bases.denied(base_id):  # a gated or private base: other credentials may read it, and check again
            facts.credentials = bases.http.credentials
        return
    facts.base_check, mismatch = base_fit(facts.modules, shapes, config.fan_in_fan_out)
    if mismatch:
        raise InvalidAdapter(f"does not fit base model {base_id}: {mismatch}")


def _read_config(http: HubHttp, repo: ListedRepo, name: str) -> dict[str, Any]:
    body = http.get(http.file_url(repo.repo_id, name, repo.sha), what=CONFIG_NAME, parse=whole_body)
    if len(body) > MAX_CONFIG_BYTES:
        raise InvalidAdapter(f"{CONFIG_NAME} is {len(body)} bytes: not a plausible adapter config")
    try:
        # NaN/Infinity stay strings, so the recorded config is valid JSON and the parser names the field.
        raw = json.loads(body, parse_constant=str)
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidAdapter(f"{CONFIG_NAME} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise InvalidAdapter(f"adapter_config must be a JSON object, got {type(raw).__name__}")
    return raw


def _record_config(facts: AdapterFacts, config: AdapterConfig) -> None:
    facts.peft_type = config.peft_type
    facts.r = config.r
    facts.lora_alpha = config.lora_alpha
    facts.use_rslora = config.use_rslora
    facts.use_dora = config.use_dora
    if isinstance(config.target_modules, str):
        facts.target_regex = config.target_modules
    elif config.target_modules is not None:
        facts.target_modules = sorted(config.target_modules)  # PEFT saves a set: its order means nothing
    facts.rank_pattern = dict(config.rank_pattern)
    facts.alpha_pattern = dict(config.alpha_pattern)
    facts.fan_in_fan_out = config.fan_in_fan_out
    facts.bias = config.bias
    facts.task_type = config.task_type
    facts.declared_base_model = config.base_model_name_or_path


def _refusal(err: HubRefused) -> tuple[str, str]:
    """A final answer about a file the listing named. Denied access is a fact of the credentials (read
    again with others), a disabled or legally blocked repo a fact of the repo, a 404 a race with a push."""
    if err.status == 451:
        return "unsupported", f"unavailable for legal reasons: {err}"
    if err.disabled:
        return "unsupported", f"disabled by the hub: {err}"
    if err.code == "GatedRepo":
        return "gated", f"gated: accept the repo's conditions with the crawl's account: {err}"
    if err.access_denied:
        return "forbidden", f"no access with the crawl's credentials (private repo?): {err}"
    if err.status == 416:
        return "invalid", f"{WEIGHTS_NAME} is empty"
    return "failed", str(err)
