"""The realistic local hub (``Realism``) behaves as huggingface.co does, seen through the real client."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from zoo.localhub import HubURL, Quota, Realism, serve_in_thread

GRANTED, OTHER, OWNER = "hf_granted", "hf_other", "hf_owner"
WEIGHTS = bytes(range(256)) * 8


def _repo(root: Path, repo_id: str, meta: dict | None = None, created: str | None = None) -> None:
    repo = root / repo_id
    repo.mkdir(parents=True)
    (repo / "adapter_model.safetensors").write_bytes(WEIGHTS + repo_id.encode())
    (repo / "adapter_config.json").write_text(json.dumps({"r": 4}))
    (repo / "README.md").write_text("---\nlibrary_name: peft\n---\n")
    meta = {**(meta or {}), "createdAt": created or "2024-01-01T00:00:00Z"}
    (repo / ".hub.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realistic")
    for i in range(12):
        _repo(root, f"org/r{i:02d}", created=f"2024-01-{i + 1:02d}T00:00:00Z")
    _repo(root, "org/gated", {"gated": "manual"})
    _repo(root, "org/disabled", {"disabled": True})
    _repo(root, "org/new-name", {"formerly": ["org/old-name"]})
    _repo(root, "org/private", {"private": True})
    return root


@pytest.fixture(scope="module")
def hub(root: Path) -> Iterator[HubURL]:
    realism = Realism(granted_tokens=frozenset({GRANTED}), owner_tokens=frozenset({OWNER}))
    with serve_in_thread(root, realism=realism) as url:
        yield url


def test_lfs_files_redirect_to_a_cdn_that_sends_no_repo_headers(hub: HubURL, tmp_path: Path) -> None:
    body = WEIGHTS + b"org/r00"
    with httpx.Client() as client:
        redirect = client.get(f"{hub}/org/r00/resolve/main/adapter_model.safetensors")
        cdn = client.get(redirect.headers["location"])
        small = client.get(f"{hub}/org/r00/resolve/main/adapter_config.json")
    assert redirect.status_code == 302 and redirect.content == b""
    assert not redirect.headers["location"].startswith(hub)  # another origin: clients drop their token
    assert redirect.headers["x-linked-etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert int(redirect.headers["x-linked-size"]) == len(body)
    assert cdn.content == body and "x-repo-commit" not in cdn.headers
    assert cdn.headers["etag"].strip('"') != hashlib.sha256(body).hexdigest()
    assert small.status_code == 200 and "x-repo-commit" in small.headers  # small files are served directly
    path = hf_hub_download("org/r00", "adapter_model.safetensors", endpoint=hub, cache_dir=tmp_path)
    assert Path(path).read_bytes() == body  # the real client follows it and checks the linked hash


def test_missing_repos_answer_anonymous_clients_401(hub: HubURL) -> None:
    with pytest.raises(RepositoryNotFoundError) as anonymous:
        HfApi(endpoint=hub, token=False).model_info("org/missing")
    with pytest.raises(RepositoryNotFoundError) as authenticated:
        HfApi(endpoint=hub, token=OTHER).model_info("org/missing")
    assert (anonymous.value.response.status_code, authenticated.value.response.status_code) == (401, 404)


def test_private_repos_are_missing_to_all_but_their_owner(hub: HubURL, tmp_path: Path) -> None:
    statuses = []
    for token in (False, OTHER, GRANTED):  # accepting gates shows nobody private repos
        api = HfApi(endpoint=hub, token=token)
        with pytest.raises(RepositoryNotFoundError) as info:
            api.model_info("org/private")
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("org/private", "adapter_config.json", endpoint=hub, token=token, cache_dir=tmp_path)
        with pytest.raises(RepositoryNotFoundError):
            api.list_repo_files("org/private")
        statuses.append(info.value.response.status_code)
        listed = {m.id for m in api.list_models(sort="createdAt")}
        assert "org/private" not in listed and "org/r00" in listed
    assert statuses == [401, 404, 404]  # exactly as for a repo that does not exist
    owner = HfApi(endpoint=hub, token=OWNER)
    assert owner.model_info("org/private").private is True
    assert "org/private" in {m.id for m in owner.list_models(sort="createdAt")}
    assert hf_hub_download("org/private", "adapter_config.json", endpoint=hub, token=OWNER, cache_dir=tmp_path)


def test_a_private_repo_pushed_to_a_writable_hub_is_seen_by_its_pusher_only(tmp_path: Path) -> None:
    (tmp_path / "hub").mkdir()
    with serve_in_thread(tmp_path / "hub", writable=True, write_token=OWNER, realism=Realism()) as url:
        HfApi(endpoint=url, token=OWNER).create_repo("org/mine", private=True)
        assert HfApi(endpoint=url, token=OWNER).model_info("org/mine").private is True
        with pytest.raises(RepositoryNotFoundError):
            HfApi(endpoint=url, token=False).model_info("org/mine")


def test_gated_files_need_a_token_that_accepted_the_gate(hub: HubURL, tmp_path: Path) -> None:
    assert HfApi(endpoint=hub, token=False).model_info("org/gated").gated == "manual"  # info stays public
    statuses = []
    for token in (False, OTHER):
        with pytest.raises(GatedRepoError) as err:
            hf_hub_download("org/gated", "adapter_config.json", endpoint=hub, token=token, cache_dir=tmp_path)
        statuses.append(err.value.response.status_code)
    assert statuses == [401, 403]
    assert hf_hub_download("org/gated", "adapter_config.json", endpoint=hub, token=GRANTED, cache_dir=tmp_path)
    assert hf_hub_download("org/gated", "README.md", endpoint=hub, token=False, cache_dir=tmp_path)


def test_disabled_repos_answer_403_disabled(hub: HubURL) -> None:
    with httpx.Client() as client:
        answer = client.get(f"{hub}/api/models/org/disabled")
    assert answer.status_code == 403 and answer.headers["x-error-message"] == "Access to this resource is disabled."


def test_renamed_repos_redirect_to_their_new_id(hub: HubURL) -> None:
    with httpx.Client() as client:
        moved = client.get(f"{hub}/api/models/org/old-name?expand=sha")
    assert moved.status_code == 307 and moved.headers["location"] == "/api/models/org/new-name?expand=sha"
    assert HfApi(endpoint=hub).model_info("org/old-name").id == "org/new-name"


def test_limit_is_the_page_size_and_listing_expand_values_are_checked(hub: HubURL) -> None:
    with httpx.Client() as client:
        page = client.get(f"{hub}/api/models", params={"limit": 5, "sort": "createdAt"})
        refused = client.get(f"{hub}/api/models", params={"expand": "usedStorage"})
    assert len(page.json()) == 5 and 'rel="next"' in page.headers["link"]
    assert refused.status_code == 400
    assert HfApi(endpoint=hub).model_info("org/r00", expand=["usedStorage"]).used_storage  # info accepts it


def _pages(url: str, **params: object) -> list[str]:
    ids: list[str] = []
    next_url: str | None = f"{url}/api/models"
    query: dict | None = {"limit": 3, **params}
    with httpx.Client() as client:
        while next_url:
            answer = client.get(next_url, params=query)
            ids += [item["id"] for item in answer.json()]
            next_url, query = answer.links.get("next", {}).get("url"), None
    return ids


def test_the_default_order_moves_between_pages_unless_a_stable_sort_is_asked(hub: HubURL) -> None:
    stable = _pages(hub, sort="createdAt")
    assert sorted(stable) == sorted(set(stable)) and len(stable) == 15
    trending = _pages(hub)
    assert len(trending) == len(stable) and len(set(trending)) < len(stable)  # some seen twice, some never


def test_quotas_are_per_bucket_window_and_token_announced_only_by_ratelimit(root: Path) -> None:
    realism = Realism(window_s=2.0, anonymous=Quota(api=3, resolvers=2), authenticated=Quota(api=5, resolvers=5))
    with serve_in_thread(root, realism=realism) as url, httpx.Client() as client:
        api = [client.get(f"{url}/api/models/org/r00") for _ in range(4)]
        files = [client.get(f"{url}/org/r00/resolve/main/adapter_config.json") for _ in range(3)]
        with_token = client.get(f"{url}/api/models/org/r00", headers={"authorization": f"Bearer {OTHER}"})
        time.sleep(float(api[-1].headers["ratelimit"].rsplit("t=", 1)[1]))
        next_window = client.get(f"{url}/api/models/org/r00")
    assert [a.status_code for a in api] == [200, 200, 200, 429]
    assert [f.status_code for f in files] == [200, 200, 429]  # resolvers are their own bucket
    assert api[0].headers["ratelimit"].startswith('"api";r=2;t=')
    assert api[0].headers["ratelimit-policy"] == '"fixed window";"api";q=3;w=2'
    assert api[3].headers["ratelimit"].startswith('"api";r=0;') and "retry-after" not in api[3].headers
    assert with_token.status_code == 200 and with_token.headers["ratelimit"].startswith('"api";r=4;')
    assert next_window.status_code == 200
