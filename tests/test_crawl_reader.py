"""The hub reader of the crawler (zoo.crawl, no Prefect) against a realistic local hub of hand-made repos.

Pins the request budget (one listing for all repos, two requests per adapter), the reasons recorded
for broken repos, retries under faults, and that the token never ends up in a reason.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from zoo.crawl import (
    BaseModelShapes,
    CrawlQuery,
    HubHttp,
    KnownAdapter,
    ListedRepo,
    RetryPolicy,
    inspect_adapter,
    list_adapter_repos,
    plan_fetches,
    vanished,
)
from zoo.crawl.inspect import READER_VERSION
from zoo.crawl.safetensors_header import PROBE_BYTES, SafetensorsError, parse_header
from zoo.localhub import Faults, HubURL, Realism, serve_in_thread

BASE = "org/base"
D_IN, D_OUT = 16, 32
FAST_RETRY = RetryPolicy(attempts=10, backoff_s=0.01, max_wait_s=2.0, timeout_s=10.0)
TOKEN = "hf_SECRETtokenThatMustNeverLeak"


def _card(**fields: object) -> str:
    return "---\n" + json.dumps(fields) + "\n---\n# Card\n"


def _lora(modules: list[str], rank: int = 4, d_out: int = D_OUT, fill: float | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {}
    for module in modules:
        prefix = f"base_model.model.{module}"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, D_IN)).astype(np.float32)
        tensors[f"{prefix}.lora_B.weight"] = np.full((d_out, rank), fill, np.float32) if fill is not None else (
            rng.standard_normal((d_out, rank)).astype(np.float32)
        )  # fmt: skip
    return tensors


def _adapter(root: Path, repo_id: str, config: dict | None, tensors: dict | None, card: dict | None = None) -> None:
    repo = root / repo_id
    repo.mkdir(parents=True)
    if config is not None:
        (repo / "adapter_config.json").write_text(json.dumps(config) if isinstance(config, dict) else config)
    if tensors is not None:
        save_file(tensors, str(repo / "adapter_model.safetensors"))
    card = {"library_name": "peft", "base_model": BASE, "license": "mit", **(card or {})}
    (repo / "README.md").write_text(_card(**card))


QV = ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]
CONFIG = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def build_hub(root: Path) -> Path:
    base = root / BASE
    base.mkdir(parents=True)
    save_file({f"{m}.weight": np.zeros((D_OUT, D_IN), np.float32) for m in QV}, str(base / "model.safetensors"))
    (base / "README.md").write_text(_card(library_name="transformers"))
    _adapter(root, "org/good", CONFIG, _lora(QV), {"datasets": ["org/data"], "license": "apache-2.0"})
    rs_config = {**CONFIG, "lora_alpha": 16, "use_rslora": True, "rank_pattern": {"v_proj": 2}}
    rs = {**_lora(QV[:1]), **_lora(QV[1:], rank=2)}
    _adapter(root, "org/rslora", rs_config, rs)
    _adapter(root, "org/pickle", CONFIG, None)
    (root / "org/pickle/adapter_model.bin").write_bytes(b"\x80\x04not really a pickle")
    _adapter(root, "org/noconfig", None, _lora(QV))
    _adapter(root, "org/badjson", "{not json", _lora(QV))
    _adapter(root, "org/dora", {**CONFIG, "use_dora": True}, _lora(QV))
    _adapter(root, "org/misfit", CONFIG, _lora(QV, d_out=24))
    _adapter(root, "org/nan", CONFIG, _lora(QV, fill=float("nan")))
    _adapter(root, "org/rankmismatch", {**CONFIG, "r": 8}, _lora(QV))
    many = [f"model.layers.{i}.self_attn.q_proj" for i in range(400)]
    _adapter(root, "other/bigheader", {**CONFIG, "r": 1}, _lora(many, rank=1, d_out=2), {"base_model": None})
    return root


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hub(tmp_path_factory.mktemp("reader-hub"))


@pytest.fixture(scope="module")
def hub(hub_root: Path) -> Iterator[HubURL]:
    with serve_in_thread(hub_root, realism=Realism()) as url:
        yield url


def _http(url: str, token: str | bool = False) -> HubHttp:
    return HubHttp(url, token=token, retry=FAST_RETRY)


def _listed(url: str) -> dict[str, ListedRepo]:
    return {r.repo_id: r for r in list_adapter_repos(_http(url), CrawlQuery())}


def test_one_request_per_listing_brings_every_field_the_catalog_needs(hub: HubURL) -> None:
    hub.requests.reset()
    repos = _listed(hub)
    assert hub.requests.by_kind() == {"list": 2}  # the peft-tagged repos, and lora-tagged ones naming an adapter config
    assert BASE not in repos  # not a PEFT repo
    good = repos["org/good"]
    assert good.sha and len(good.sha) == 40
    assert (good.license, good.base_models, good.datasets) == ("apache-2.0", (BASE,), ("org/data",))
    assert good.library_name == "peft"
    assert set(good.files) == {"README.md", "adapter_config.json", "adapter_model.safetensors"}
    assert "base_model:adapter:org/base" in good.tags and good.card_data["license"] == "apache-2.0"


def test_listing_follows_pages_and_filters_by_base_model_search_author_and_limit(hub: HubURL, hub_root: Path) -> None:
    in_one_page = {r.repo_id for r in list_adapter_repos(_http(hub), CrawlQuery())}
    with serve_in_thread(hub_root, page_size=3, realism=Realism()) as url:  # the default order moves between pages
        everything = list_adapter_repos(_http(url), CrawlQuery())
        assert url.requests.by_kind()["list"] == -(-len(everything) // 3) + 1  # and the (empty) lora listing
        assert sorted(r.repo_id for r in everything) == sorted(in_one_page)  # each once: a stable sort was asked
        by_base = list_adapter_repos(_http(url), CrawlQuery(base_models=(BASE,)))
        assert {r.repo_id for r in by_base} == {r.repo_id for r in everything} - {"other/bigheader"}
        assert [r.repo_id for r in list_adapter_repos(_http(url), CrawlQuery(search="rslo"))] == ["org/rslora"]
        assert [r.repo_id for r in list_adapter_repos(_http(url), CrawlQuery(author="other"))] == ["other/bigheader"]
        assert len(list_adapter_repos(_http(url), CrawlQuery(limit=4))) == 4


def test_a_good_adapter_costs_two_requests_and_lands_with_its_fields(hub: HubURL) -> None:
    repo = _listed(hub)["org/good"]
    http = _http(hub)
    bases = BaseModelShapes(http)
    bases.shapes(BASE)  # read once per crawl, shared by every adapter of the base
    hub.requests.reset()
    facts = inspect_adapter(http, repo, bases)
    assert hub.requests.by_kind() == {"file-get": 2, "cdn": 1}  # the weights' header: a 302, then the CDN
    assert (facts.status, facts.reason, facts.sha) == ("ok", None, repo.sha)
    assert (facts.r, facts.lora_alpha, facts.use_rslora, facts.target_modules) == (4, 8.0, False, ["q_proj", "v_proj"])
    assert (facts.dtype, facts.module_count, facts.parameter_count) == ("F32", 2, 2 * 4 * (D_IN + D_OUT))
    assert facts.base_check == "fits" and not facts.weights_verified
    assert [(m.module, m.rank, m.d_in, m.d_out, m.scale) for m in facts.modules] == [
        (QV[0], 4, D_IN, D_OUT, 2.0),
        (QV[1], 4, D_IN, D_OUT, 2.0),
    ]


def test_rank_pattern_and_rslora_resolve_per_module(hub: HubURL) -> None:
    http = _http(hub)
    facts = inspect_adapter(http, _listed(hub)["org/rslora"], BaseModelShapes(http))
    assert facts.status == "ok" and facts.rank_pattern == {"v_proj": 2}
    assert [(m.rank, m.scale) for m in facts.modules] == [(4, 16 / 2), (2, pytest.approx(16 / np.sqrt(2)))]


@pytest.mark.parametrize(
    ("repo_id", "status", "reason"),
    [
        ("org/pickle", "unsupported", "only pickled weights (adapter_model.bin)"),
        ("org/noconfig", "invalid", "adapter_config.json missing"),
        ("org/badjson", "invalid", "adapter_config.json is not valid JSON"),
        ("org/dora", "unsupported", "DoRA"),
        ("org/misfit", "invalid", "does not fit base model org/base"),
        ("org/rankmismatch", "invalid", "the config gives rank 8"),
    ],
)
def test_broken_repos_are_recorded_with_their_reason(hub: HubURL, repo_id: str, status: str, reason: str) -> None:
    http = _http(hub)
    facts = inspect_adapter(http, _listed(hub)[repo_id], BaseModelShapes(http))
    assert facts.status == status
    assert reason in facts.reason


@pytest.mark.parametrize("name", ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "a\\..\\b", "a/./b"])
def test_unsafe_file_names_are_refused_without_a_request(hub: HubURL, name: str) -> None:
    hub.requests.reset()
    repo = ListedRepo(repo_id="org/evil", sha="0" * 40, files=(name, "adapter_config.json"))
    facts = inspect_adapter(_http(hub), repo, BaseModelShapes(_http(hub)))
    assert (facts.status, hub.requests.total) == ("invalid", 0)
    assert "unsafe file name" in facts.reason


def test_a_header_longer_than_the_probe_costs_one_more_range_request(hub: HubURL) -> None:
    repo = _listed(hub)["other/bigheader"]
    hub.requests.reset()
    http = _http(hub)
    facts = inspect_adapter(http, repo, BaseModelShapes(http))
    assert facts.status == "ok" and facts.module_count == 400
    assert facts.weight_bytes > PROBE_BYTES and facts.base_check == "unchecked: no base model named"
    assert hub.requests.by_kind() == {"file-get": 3, "cdn": 2}


def test_nan_weights_need_verify_weights(hub: HubURL) -> None:
    http = _http(hub)
    repo = _listed(hub)["org/nan"]
    metadata_only = inspect_adapter(http, repo, BaseModelShapes(http))
    assert (metadata_only.status, metadata_only.weights_verified) == ("ok", False)
    verified = inspect_adapter(http, repo, BaseModelShapes(http), verify_weights=True)
    assert verified.status == "invalid" and "NaN or inf" in verified.reason
    good = inspect_adapter(http, _listed(hub)["org/good"], BaseModelShapes(http), verify_weights=True)
    assert (good.status, good.weights_verified) == ("ok", True)


def _read_all(url: str) -> dict[str, dict]:
    http = _http(url)
    bases = BaseModelShapes(http)
    listed = list_adapter_repos(http, CrawlQuery())
    return {r.repo_id: vars(inspect_adapter(http, r, bases, verify_weights=True)) for r in listed}


def test_5xx_and_truncated_bodies_are_retried_until_everything_is_read(hub: HubURL, hub_root: Path) -> None:
    clean = _read_all(hub)
    with serve_in_thread(hub_root, Faults(error_rate=0.2, truncate_rate=0.3, seed=3)) as faulty:
        assert _read_all(faulty) == clean
        statuses = faulty.requests.by_status()
    assert sum(n for s, n in statuses.items() if s >= 500) > 0


def test_retry_after_is_honoured_and_pauses_the_whole_client(hub_root: Path) -> None:
    with serve_in_thread(hub_root, Faults(rate_limit=4)) as url:
        http = _http(url)
        started = time.monotonic()
        for _ in range(8):
            list_adapter_repos(http, CrawlQuery(limit=1))
        elapsed = time.monotonic() - started
        assert url.requests.by_status().get(429, 0) >= 1
    assert elapsed >= 1.0  # Retry-After: 1 was waited, not the 0.01 s backoff


def test_rate_limits_do_not_use_up_the_attempts(hub_root: Path) -> None:
    with serve_in_thread(hub_root) as url:
        listed = [r for r in list_adapter_repos(_http(url), CrawlQuery()) if r.repo_id in ("org/good", "org/rslora")]
        url.hub.faults = Faults(rate_limit=4)
        http = HubHttp(url, retry=RetryPolicy(attempts=2, backoff_s=0.01))
        bases = BaseModelShapes(http)
        with ThreadPoolExecutor(8) as pool:
            facts = list(pool.map(lambda r: inspect_adapter(http, r, bases), listed * 3))
        assert url.requests.by_status().get(429, 0) > 2  # more rate limits than the attempts allow
    assert {f.status for f in facts} == {"ok"}


def test_the_token_is_sent_but_never_part_of_a_reason(hub_root: Path) -> None:
    with serve_in_thread(hub_root, Faults(error_rate=1.0)) as url:
        http = HubHttp(url, token=TOKEN, retry=RetryPolicy(attempts=2, backoff_s=0.01))
        repo = ListedRepo(repo_id="org/good", sha=None, files=("adapter_config.json", "adapter_model.safetensors"))
        facts = inspect_adapter(http, repo, BaseModelShapes(http))
    assert facts.status == "failed" and "gave up after 2 tries" in facts.reason
    assert TOKEN not in json.dumps(vars(facts), default=str)


def test_vanished_repos_are_confirmed_gone_or_renamed_by_the_hub(hub_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "hub"
    shutil.copytree(hub_root, root)
    with serve_in_thread(root, realism=Realism()) as url:
        before = [r.repo_id for r in list_adapter_repos(_http(url), CrawlQuery())]
        shutil.rmtree(root / "org/dora")  # the hub answers anonymous clients 401 RepoNotFound
        (root / "org/rslora").rename(root / "org/rslora-v2")
        (root / "org/rslora-v2/.hub.json").write_text(json.dumps({"formerly": ["org/rslora"]}))
        now = [r.repo_id for r in list_adapter_repos(_http(url), CrawlQuery())]
        # org/good still exists: it only left this listing, so it is not removed
        gone = vanished(_http(url), before, [r for r in now if r != "org/good"])
    assert (gone.removed, gone.renamed) == (["org/dora"], {"org/rslora": "org/rslora-v2"})


def test_plan_reads_new_changed_failed_refused_to_others_and_unverified_repos_only() -> None:
    names = ("new", "same", "moved", "failed", "ok", "gated", "gated-for-us", "on-gated-base")
    listed = [ListedRepo(repo_id=name, sha="s1") for name in names]
    v = READER_VERSION
    known = {
        "same": KnownAdapter("s1", "invalid", v, False),
        "moved": KnownAdapter("s0", "ok", v, False),
        "failed": KnownAdapter("s1", "failed", v, False),
        "ok": KnownAdapter("s1", "ok", v, False),
        "gated": KnownAdapter("s1", "gated", v, False, credentials="anonymous"),  # refused to other credentials
        "gated-for-us": KnownAdapter("s1", "forbidden", v, False, credentials="token:us"),
        "on-gated-base": KnownAdapter("s1", "ok", v, True, credentials="anonymous"),  # its base refused them
    }
    to_fetch, counts = plan_fetches(listed, known, verify_weights=False, credentials="token:us")
    assert [r.repo_id for r in to_fetch] == ["new", "moved", "failed", "gated", "on-gated-base"]
    assert counts == {"new": 1, "updated": 4, "unchanged": 3}
    to_fetch, _ = plan_fetches(listed, known, verify_weights=True, credentials="token:us")
    assert [r.repo_id for r in to_fetch] == ["new", "moved", "failed", "ok", "gated", "on-gated-base"]
    assert plan_fetches(listed[-1:], known, verify_weights=False, credentials="anonymous")[0] == []
    stale = plan_fetches(listed[1:2], {"same": KnownAdapter("s1", "invalid", v - 1, False)}, verify_weights=False)
    assert [r.repo_id for r in stale[0]] == ["same"]  # read by older rules


@pytest.mark.parametrize(
    ("header", "size", "message"),
    [
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 4, "data section has 4"),
        ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, "8 bytes for F32[3]"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, "expected 0"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, 0, "non-negative"),
        ([1, 2], 0, "not a JSON object"),
    ],
)
def test_malformed_safetensors_headers_are_refused(header: object, size: int, message: str) -> None:
    raw = json.dumps(header).encode()
    with pytest.raises(SafetensorsError, match=re.escape(message)):
        parse_header(raw, 8 + len(raw) + size)
