"""Fault injection does what it promises, requests are counted, and unchanged files are never re-hashed."""

from __future__ import annotations

import http.client
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from zoo.localhub import Faults, serve_in_thread
from zoo.localhub import repos as repos_module
from zoo.localhub.repos import MODEL, RACY_NS, RepoIndex

BODY = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faulty")
    repo = root / "org" / "repo"
    repo.mkdir(parents=True)
    (repo / "weights.bin").write_bytes(BODY)
    (repo / "README.md").write_text("---\nlicense: mit\n---\n")
    return root


def _statuses(url: str, n: int) -> list[int]:
    with httpx.Client() as client:
        return [client.get(f"{url}/api/models/org/repo").status_code for _ in range(n)]


def test_rate_limit_answers_429_with_retry_after(root: Path) -> None:
    with serve_in_thread(root, Faults(rate_limit=0.5)) as url, httpx.Client() as client:
        answers = [client.get(f"{url}/api/models") for _ in range(6)]
        assert answers[0].status_code == 200  # a burst of one request, then one per 2 s
        limited = [a for a in answers if a.status_code == 429]
        assert len(limited) >= 4
        assert all(int(a.headers["Retry-After"]) >= 1 for a in limited)
        with pytest.raises(HfHubHTTPError, match="429"):  # a client that does not retry sees it too
            HfApi(endpoint=url).model_info("org/repo")
        assert url.requests.by_status()[429] >= 4


def test_error_rate_is_a_seeded_fraction(root: Path) -> None:
    with serve_in_thread(root, Faults(error_rate=0.3, seed=7)) as url:
        first = _statuses(url, 200)
    with serve_in_thread(root, Faults(error_rate=0.3, seed=7)) as url:
        again = _statuses(url, 200)
    errors = [s for s in first if s != 200]
    assert set(errors) <= {500, 502, 503} and len(set(errors)) > 1
    assert 0.2 <= len(errors) / len(first) <= 0.4
    assert again == first  # same seed, same request order: same answers


def test_truncated_bodies_are_shorter_than_content_length(root: Path) -> None:
    with serve_in_thread(root, Faults(truncate_rate=1.0)) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", "/org/repo/resolve/main/weights.bin")
        answer = conn.getresponse()
        assert int(answer.headers["Content-Length"]) == len(BODY)
        with pytest.raises(http.client.IncompleteRead) as cut:
            answer.read()
        conn.close()
        assert len(cut.value.partial) < len(BODY) and BODY.startswith(cut.value.partial)
        head = httpx.head(f"{url}/org/repo/resolve/main/weights.bin")  # HEAD answers are never cut
        assert head.status_code == 200 and head.headers["content-length"] == str(len(BODY))
        assert httpx.get(f"{url}/api/models/org/repo").status_code == 200  # nor API answers


def test_truncate_rate_is_a_fraction(root: Path) -> None:
    with serve_in_thread(root, Faults(truncate_rate=0.5, seed=3)) as url, httpx.Client() as client:
        cut = 0
        for _ in range(40):
            try:
                assert client.get(f"{url}/org/repo/resolve/main/weights.bin").content == BODY
            except httpx.RemoteProtocolError:
                cut += 1
    assert 10 <= cut <= 30


def test_latency_is_added(root: Path) -> None:
    with serve_in_thread(root, Faults(latency_ms=150)) as url:
        start = time.perf_counter()
        assert httpx.get(f"{url}/api/models").status_code == 200
        assert time.perf_counter() - start >= 0.15


def test_faults_can_change_while_serving(root: Path) -> None:
    with serve_in_thread(root) as url:
        assert _statuses(url, 3) == [200] * 3
        url.hub.faults = Faults(error_rate=1.0)
        assert all(s >= 500 for s in _statuses(url, 3))
        url.hub.faults = Faults()
        assert _statuses(url, 1) == [200]


def test_requests_are_counted_by_kind_and_path(root: Path, tmp_path: Path) -> None:
    with serve_in_thread(root) as url:
        api = HfApi(endpoint=url)
        list(api.list_models())
        api.model_info("org/repo")
        hf_hub_download("org/repo", "weights.bin", endpoint=url, cache_dir=tmp_path)
        assert url.requests.by_kind() == {"list": 1, "info": 1, "file-head": 1, "file-get": 1}
        assert url.requests.by_path()["GET /org/repo/resolve/main/weights.bin"] == 1
        assert url.requests.total == 4 and url.requests.by_status() == {200: 4}
        url.requests.reset()
        assert url.requests.total == 0


def _count_hashing(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hashed: list[str] = []
    real = repos_module._digest_file

    def counting(path: str, size: int) -> repos_module.FileDigest:
        hashed.append(path)
        return real(path, size)

    monkeypatch.setattr(repos_module, "_digest_file", counting)
    return hashed


def test_unchanged_files_are_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = _count_hashing(monkeypatch)
    for i in range(300):
        repo = tmp_path / f"org{i % 7}" / f"repo-{i}"
        repo.mkdir(parents=True)
        (repo / "adapter_config.json").write_text(f'{{"r": {i}}}')
        (repo / "README.md").write_text(f"---\ntags: [t{i % 3}]\n---\n")
        for f in repo.iterdir():  # files written long ago: their cache entries are trusted at once
            os.utime(f, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    index = RepoIndex(tmp_path)
    first = index.list(MODEL)
    assert len(first) == 300 and len(hashed) == 600
    again = index.list(MODEL)
    assert len(hashed) == 600 and [r.sha for r in again] == [r.sha for r in first]
    edited = tmp_path / "org3" / "repo-10" / "adapter_config.json"
    edited.write_text('{"r": 1000}')
    before = {r.id: r.sha for r in first}
    after = {r.id: r.sha for r in index.list(MODEL)}
    assert hashed[600:] == [str(edited.resolve())]
    assert {k for k in before if before[k] != after[k]} == {"org3/repo-10"}


def test_a_recent_edit_keeping_size_and_mtime_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Coarse timestamps can hide a same-size edit right after hashing; recent files are re-hashed."""
    hashed = _count_hashing(monkeypatch)
    config = tmp_path / "org" / "repo" / "adapter_config.json"
    config.parent.mkdir(parents=True)
    config.write_text('{"r": 4}')
    stamp = config.stat().st_mtime_ns
    index = RepoIndex(tmp_path)
    first = index.get(MODEL, "org/repo")
    config.write_text('{"r": 8}')
    os.utime(config, ns=(stamp, stamp))  # same size, same mtime: what a coarse clock produces
    assert index.get(MODEL, "org/repo").sha != first.sha and len(hashed) == 2
    old = stamp - 2 * RACY_NS
    os.utime(config, ns=(old, old))
    index.get(MODEL, "org/repo")
    assert index.get(MODEL, "org/repo") is index.get(MODEL, "org/repo") and len(hashed) == 3  # aged: cached
