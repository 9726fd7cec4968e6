"""The crawler's reader against a local hub as strict as huggingface.co: access refusals, the user's own
login, LFS redirects with the content hash on the 302, quantised and gated base models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants
from safetensors.numpy import save_file
from test_crawl_reader import BASE, CONFIG, D_IN, D_OUT, FAST_RETRY, QV, _adapter, _card, _lora, build_hub

from zoo.crawl import BaseModelShapes, CrawlQuery, HubHttp, inspect_adapter, inspect_repo, list_adapter_repos
from zoo.localhub import Faults, HubURL, Realism, serve_in_thread

GRANTED = "hf_acceptedTheGate"
REFUSED = "hf_neverAskedForAccess"


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_hub(tmp_path_factory.mktemp("real-hub"))
    for repo_id, meta in {
        "gated/adapter": {"gated": "manual"},
        "blocked/disabled": {"disabled": True},
        "blocked/legal": {"disabled": "legal"},
    }.items():
        _adapter(root, repo_id, CONFIG, _lora(QV))
        (root / repo_id / ".hub.json").write_text(json.dumps(meta))
    _adapter(root, "lib/transformers-lora", CONFIG, _lora(QV), {"library_name": "transformers", "tags": ["lora"]})
    _adapter(root, "org/named", None, None)
    for folder, rank in (("french", 4), ("checkpoint-10", 2)):  # PEFT's named adapters, a trainer's checkpoint
        adapter = root / "org/named" / folder
        adapter.mkdir()
        save_file(_lora(QV, rank=rank), str(adapter / "adapter_model.safetensors"))
        (adapter / "adapter_config.json").write_text(json.dumps({**CONFIG, "r": rank}))
    return root


@pytest.fixture(scope="module")
def hub(hub_root: Path) -> Iterator[HubURL]:
    with serve_in_thread(hub_root, realism=Realism(granted_tokens=frozenset({GRANTED}))) as url:
        yield url


def _read(url: str, repo_id: str, token: str | bool, verify_weights: bool = False) -> dict:
    http = HubHttp(url, token=token, retry=FAST_RETRY)
    repo = next(r for r in list_adapter_repos(http, CrawlQuery()) if r.repo_id == repo_id)
    return vars(inspect_adapter(http, repo, BaseModelShapes(http), verify_weights))


def test_gated_repos_are_an_access_state_of_the_credentials(hub: HubURL) -> None:
    anonymous, refused, granted = (_read(hub, "gated/adapter", token) for token in (False, REFUSED, GRANTED))
    assert (anonymous["status"], refused["status"], granted["status"]) == ("gated", "gated", "ok")
    assert "HTTP 401 GatedRepo" in anonymous["reason"] and "HTTP 403 GatedRepo" in refused["reason"]
    assert anonymous["credentials"] == "anonymous" and refused["credentials"].startswith("token:")
    assert granted["credentials"] is None  # read: the credentials no longer matter
    assert not any(token in json.dumps(facts, default=str) for facts in (refused, granted) for token in (REFUSED, GRANTED))


@pytest.mark.parametrize(
    ("repo_id", "reason"), [("blocked/disabled", "disabled by the hub"), ("blocked/legal", "unavailable for legal")]
)
def test_disabled_and_legally_blocked_repos_get_their_own_reasons(hub: HubURL, repo_id: str, reason: str) -> None:
    facts = _read(hub, repo_id, GRANTED)
    assert facts["status"] == "unsupported" and reason in facts["reason"]


def test_the_users_own_login_is_used_when_hf_token_is_unset(
    hub: HubURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(GRANTED)  # what `hf auth login` saves
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    assert _read(hub, "gated/adapter", None)["status"] == "ok"


def test_verified_weights_are_checked_against_the_hash_on_the_redirect(hub: HubURL, hub_root: Path) -> None:
    clean = _read(hub, "org/good", False, verify_weights=True)
    with serve_in_thread(hub_root, Faults(corrupt_rate=0.5, seed=5), realism=Realism()) as faulty:
        http = HubHttp(faulty, token=False, retry=FAST_RETRY)
        repo = next(r for r in list_adapter_repos(http, CrawlQuery()) if r.repo_id == "org/good")
        facts = [vars(inspect_adapter(http, repo, BaseModelShapes(http), True)) for _ in range(6)]
        cdn_downloads = faulty.requests.by_kind()["cdn"]
    assert all(f == clean for f in facts)  # every flipped byte was caught and the file fetched again
    assert cdn_downloads > 2 * len(facts)  # a header and a whole file per read, and some again


def _quantised_base(root: Path, repo_id: str, **config: object) -> None:
    """A bitsandbytes 4-bit checkpoint: packed uint8 weights ``[N, 1]`` and their quant states."""
    repo = root / repo_id
    repo.mkdir(parents=True)
    tensors = {}
    for module in QV:
        tensors[f"{module}.weight"] = np.zeros((D_OUT * D_IN // 2, 1), np.uint8)
        tensors[f"{module}.weight.quant_state.bitsandbytes__nf4"] = np.zeros((8,), np.uint8)
    save_file(tensors, str(repo / "model.safetensors"))
    quantisation = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    shape = {
        "hidden_size": D_IN, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": D_OUT // 2,
    }  # fmt: skip
    config = {"model_type": "llama", **shape, **config, "quantization_config": quantisation}
    (repo / "config.json").write_text(json.dumps(config))
    (repo / "README.md").write_text(_card(library_name="transformers", base_model=BASE))


@pytest.fixture(scope="module")
def quantised_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubURL]:
    root = build_hub(tmp_path_factory.mktemp("quantised-hub"))
    _quantised_base(root, "org/base-bnb-4bit")
    _adapter(root, "org/on-4bit", CONFIG, _lora(QV), {"base_model": "org/base-bnb-4bit"})
    _adapter(root, "org/misfit-on-4bit", CONFIG, _lora(QV, d_out=24), {"base_model": "org/base-bnb-4bit"})
    (root / BASE / ".hub.json").write_text(json.dumps({"gated": "manual"}))
    with serve_in_thread(root, realism=Realism(granted_tokens=frozenset({GRANTED}))) as url:
        yield url


def test_adapters_of_4bit_bases_are_checked_against_the_unquantised_shapes(quantised_hub: HubURL) -> None:
    fits = _read(quantised_hub, "org/on-4bit", GRANTED)
    misfit = _read(quantised_hub, "org/misfit-on-4bit", GRANTED)
    assert (fits["status"], fits["base_check"]) == ("ok", "fits")  # against the unquantised base its card names
    assert misfit["status"] == "invalid" and "does not fit base model" in misfit["reason"]


def test_adapters_of_a_gated_base_are_checked_against_its_config_or_left_unchecked(quantised_hub: HubURL) -> None:
    anonymous = _read(quantised_hub, "org/good", False)  # the base org/base is gated: neither weights nor config
    assert anonymous["status"] == "ok" and anonymous["base_check"].startswith("unchecked: base model org/base")
    assert anonymous["credentials"] == "anonymous"  # refused to these credentials: read again with others
    granted = _read(quantised_hub, "org/good", GRANTED)
    assert (granted["status"], granted["base_check"], granted["credentials"]) == ("ok", "fits", None)
    on_4bit = _read(quantised_hub, "org/on-4bit", False)  # its quantised base is public: checked on its config
    assert (on_4bit["status"], on_4bit["base_check"], on_4bit["credentials"]) == ("ok", "fits", None)


def test_adapters_are_discovered_beyond_the_peft_tag_and_say_how(hub: HubURL) -> None:
    http = HubHttp(hub, token=False, retry=FAST_RETRY)
    everything = {r.repo_id: r.discovered_by for r in list_adapter_repos(http, CrawlQuery())}
    of_base = {r.repo_id: r.discovered_by for r in list_adapter_repos(http, CrawlQuery(base_models=(BASE,)))}
    assert everything["lib/transformers-lora"] == ("adapter_config.json",)  # its card names another library
    assert everything["org/good"] == ("peft",)
    assert of_base["lib/transformers-lora"] == of_base["org/good"] == ("base_model:adapter",)


def test_each_adapter_folder_of_a_repo_is_an_adapter_of_its_own(hub: HubURL) -> None:
    http = HubHttp(hub, token=False, retry=FAST_RETRY)
    repo = next(r for r in list_adapter_repos(http, CrawlQuery()) if r.repo_id == "org/named")
    adapters = inspect_repo(http, repo, BaseModelShapes(http))
    assert [(f.subfolder, f.status, f.r, f.base_check) for f in adapters] == [
        ("checkpoint-10", "ok", 2, "fits"),
        ("french", "ok", 4, "fits"),
    ]
    assert adapters[1].weight_file == "french/adapter_model.safetensors"
