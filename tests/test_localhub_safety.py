"""Names from requests are never trusted as paths: traversal is refused, nothing outside a repo is served."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import HfApi, hf_hub_download

from zoo.localhub import HubURL, serve_in_thread

SECRET = b"TOP-SECRET-OUTSIDE-THE-HUB"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``site/secret.txt`` outside the served ``site/hub``, and repos that point at it in every way."""
    site = tmp_path_factory.mktemp("site")
    (site / "secret.txt").write_bytes(SECRET)
    repo = site / "hub" / "alice" / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "README.md").write_text("# plain\n")
    (repo / "sub" / "inner.txt").write_text("inner")
    (repo / ".hub.json").write_text(json.dumps({"downloads": 1}))
    (repo / "escape.txt").symlink_to(site / "secret.txt")  # leaves the repo: neither listed nor served
    (repo / "alias.txt").symlink_to(repo / "sub" / "inner.txt")  # stays inside: served
    (repo / "..\\evil.txt").write_text("backslash name")  # legal on POSIX, a traversal on Windows
    (repo / "we ird #?%.txt").write_text("odd but harmless")
    (repo / "ünïcode.txt").write_text("unicode")
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("[core]")
    outside = site / "elsewhere" / "repo"
    outside.mkdir(parents=True)
    (outside / "README.md").write_text("outside the hub")
    (site / "hub" / "alice" / "linked").symlink_to(outside, target_is_directory=True)
    return site


@pytest.fixture(scope="module")
def hub(site: Path) -> Iterator[HubURL]:
    with serve_in_thread(site / "hub") as url:
        yield url


def _raw_get(hub: HubURL, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Send ``path`` byte for byte (http.client neither normalises dot segments nor re-encodes)."""
    parts = urlsplit(hub)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


TRAVERSALS = [
    "/alice/repo/resolve/main/../../../secret.txt",
    "/alice/repo/resolve/main/sub/../../../../secret.txt",
    "/alice/repo/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/alice/repo/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/alice/repo/resolve/main/..%5c..%5c..%5csecret.txt",
    "/alice/repo/resolve/main/%2fetc%2fpasswd",
    "/alice/repo/resolve/main//etc/passwd",
    "/alice/repo/resolve/main/./README.md",
    "/alice/repo/resolve/main/README.md%00.txt",
    "/alice/repo/resolve/main/escape.txt",
    "/alice/repo/resolve/main/.hub.json",
    "/alice/repo/resolve/main/.git/config",
    "/alice/repo/resolve/main/..%5cevil.txt",
    "/%2e%2e/%2e%2e/resolve/main/secret.txt",
    "/alice/..%2f..%2f/resolve/main/secret.txt",
    "/alice/linked/resolve/main/README.md",
    "/datasets/../../resolve/main/secret.txt",
    "/api/models/alice/repo/tree/main/%2e%2e",
    "/api/models/alice/repo/tree/main/..%2f..",
    "/api/models/%2e%2e/%2e%2e",
    "/api/models/alice/repo/revision/..%2f..%2f..",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_refused(hub: HubURL, path: str) -> None:
    status, body = _raw_get(hub, path)
    assert 400 <= status < 500, (path, status)
    assert SECRET not in body and b"root:" not in body


def test_refused_paths_never_touch_the_file_list(hub: HubURL) -> None:
    assert _raw_get(hub, "/alice/repo/resolve/main/sub/../README.md")[0] == 400  # even when it would stay inside
    assert _raw_get(hub, "/alice/repo/resolve/main/escape.txt")[0] == 404


def test_write_methods_are_not_allowed(hub: HubURL) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert _raw_get(hub, "/api/models/alice/repo", method)[0] == 405


def test_dangerous_names_are_listed_and_safe_ones_served(hub: HubURL, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub)
    files = set(api.list_repo_files("alice/repo"))
    assert files == {"README.md", "sub/inner.txt", "alias.txt", "..\\evil.txt", "we ird #?%.txt", "ünïcode.txt"}
    assert [m.id for m in api.list_models()] == ["alice/repo"]  # the symlink to a folder outside is no repo
    for name, text in [("we ird #?%.txt", "odd but harmless"), ("ünïcode.txt", "unicode"), ("alias.txt", "inner")]:
        got = hf_hub_download("alice/repo", name, endpoint=hub, cache_dir=tmp_path)
        assert Path(got).read_text() == text
    assert _raw_get(hub, "/alice/repo/resolve/main/..%5Cevil.txt")[0] == 400


def test_repo_ids_must_be_hub_ids(site: Path, hub: HubURL) -> None:
    (site / "hub" / "bad name").mkdir()
    (site / "hub" / "bad name" / "repo").mkdir()
    (site / "hub" / "bad name" / "repo" / "x.txt").write_text("x")
    try:
        assert [m.id for m in HfApi(endpoint=hub).list_models()] == ["alice/repo"]
        assert _raw_get(hub, "/bad%20name/repo/resolve/main/x.txt")[0] == 404
    finally:
        os.remove(site / "hub" / "bad name" / "repo" / "x.txt")
        os.rmdir(site / "hub" / "bad name" / "repo")
        os.rmdir(site / "hub" / "bad name")


def test_hostile_cards_are_served_without_card_data(tmp_path: Path) -> None:
    lol = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    levels = [f"l0: &l0 {lol}"] + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = tmp_path / "evil" / "yaml-bomb"
    bomb.mkdir(parents=True)
    (bomb / "README.md").write_text("---\n" + "\n".join(levels) + "\n---\n")  # 9**9 strings once expanded
    odd = tmp_path / "evil" / "odd-values"
    odd.mkdir(parents=True)
    (odd / "README.md").write_text("---\nscore: .nan\ndate: 2024-01-01\n1: one\nlicense: [mit, apache-2.0]\n---\n")
    with serve_in_thread(tmp_path) as url:
        api = HfApi(endpoint=url)
        assert [m.id for m in api.list_models(cardData=True)] == ["evil/odd-values", "evil/yaml-bomb"]
        assert api.model_info("evil/yaml-bomb").card_data is None
        card = api.model_info("evil/odd-values").card_data
        assert (card["score"], card["date"], card["1"]) == ("nan", "2024-01-01", "one")
        assert {"license:mit", "license:apache-2.0"} <= set(api.model_info("evil/odd-values").tags)
