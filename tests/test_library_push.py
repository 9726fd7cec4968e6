"""Sharing a library: pushed to a writable local hub with the real ``huggingface_hub`` client, pulled back intact.

The local hub's write API is pinned here too: tokens, read-only refusals, path validation, atomic commits.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
import yaml
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError
from test_library import routed_logits, sources
from test_routing import EXPERT_CONFIGS, peft_model
from typer.testing import CliRunner

from zoo.library import (
    LibraryError, build_library, hub_resolver, load_library, pull_library, push_library, save_library,
)
from zoo.localhub import HubURL, serve_in_thread
from zoo.localhub.errors import ApiError
from zoo.localhub.repos import HISTORY_DIR, MODEL, RepoIndex
from zoo.localhub.writes import LOCK_FILE, Operation, RepoWriter

TOKEN = "test-token"
SETTINGS = {"top_k": 2, "temperature": 0.5}


@pytest.fixture(scope="module")
def experts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PEFT adapters on the tiny llama, laid out like a hub (``org/expert-<i>``)."""
    root = tmp_path_factory.mktemp("experts")
    for i in range(len(EXPERT_CONFIGS)):
        peft_model(i).save_pretrained(root / "org" / f"expert-{i}")
    return root


@pytest.fixture(scope="module")
def library_dir(experts_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved Arrow library of three copied experts."""
    library = build_library(sources(experts_root), base_model="org/tiny-base", router="arrow", settings=SETTINGS)
    return save_library(library, tmp_path_factory.mktemp("lib") / "library")


@pytest.fixture()
def hub_root(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    root.mkdir()
    return root


@pytest.fixture()
def hub(hub_root: Path) -> Iterator[HubURL]:
    with serve_in_thread(hub_root, writable=True) as url:
        yield url


def _repos(hub_root: Path) -> list[str]:
    """What the served folder holds besides the write lock: orgs, repos, staging leftovers."""
    return sorted(p.relative_to(hub_root).as_posix() for p in hub_root.rglob("*")
                  if p.name != LOCK_FILE and not p.relative_to(hub_root).as_posix().startswith(HISTORY_DIR))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _post(hub: str, path: str, body: bytes, token: str | None = TOKEN) -> tuple[int, dict]:
    """A raw POST, byte for byte, with or without a bearer token."""
    parts = urlsplit(hub)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/x-ndjson", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        conn.close()


def _commit(*ops: tuple[str, dict], parent: str | None = None) -> bytes:
    header = {"summary": "raw", "description": "", **({"parentCommit": parent} if parent else {})}
    lines = [{"key": "header", "value": header}]
    lines += [{"key": key, "value": value} for key, value in ops]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _add(path: str, content: bytes = b"x") -> tuple[str, dict]:
    return "file", {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"}


def test_a_pushed_library_pulls_back_identical(library_dir: Path, hub: HubURL, hub_root: Path, tmp_path: Path) -> None:
    sha = push_library(library_dir, "org/lib", token=TOKEN, endpoint=hub)
    api = HfApi(endpoint=hub)
    assert api.model_info("org/lib").sha == sha
    on_disk = _files(hub_root / "org" / "lib")
    assert {k: v for k, v in on_disk.items() if k != "README.md"} == _files(library_dir)
    card = on_disk["README.md"].decode()
    front = yaml.safe_load(card.split("---")[1])
    assert front == {"library_name": "zoo-recycler", "base_model": "org/tiny-base",
                     "tags": ["zoo-recycler", "lora", "routed-library", "arrow"]}
    assert "3 LoRA experts over `org/tiny-base`, built by zoo recycler" in card
    manifest = load_library(library_dir).manifest
    assert all(f"| {i} | org/expert-{i} | org/expert-{i} | {m.revision} |" in card
               for i, m in enumerate(manifest.members))
    assert [m.id for m in api.list_models(filter="routed-library")] == ["org/lib"]

    pulled = pull_library("org/lib", endpoint=hub, cache_dir=tmp_path / "cache")
    original = load_library(library_dir)
    assert pulled.manifest == original.manifest
    assert set(pulled.routing) == set(original.routing)
    for name, entry in original.routing.items():
        assert pulled.routing[name].experts == entry.experts
        torch.testing.assert_close(pulled.routing[name].vectors, entry.vectors, rtol=0, atol=0)
    torch.testing.assert_close(routed_logits(pulled), routed_logits(original), rtol=0, atol=0)


def test_pushing_the_same_library_again_makes_no_commit(
    library_dir: Path, experts_root: Path, hub: HubURL, hub_root: Path, tmp_path: Path
) -> None:
    sha = push_library(library_dir, "org/lib", token=TOKEN, endpoint=hub)
    commits = hub.requests.by_kind()["commit"]
    assert push_library(library_dir, "org/lib", token=TOKEN, endpoint=hub) == sha
    assert hub.requests.by_kind()["commit"] == commits  # every file unchanged: the client skips the commit

    smaller = save_library(build_library(sources(experts_root)[:2], base_model="org/tiny-base", router="arrow"), tmp_path / "small")
    new_sha = push_library(smaller, "org/lib", token=TOKEN, endpoint=hub)
    assert new_sha != sha
    assert not (hub_root / "org" / "lib" / "experts" / "2").exists()  # the bigger library's leftovers are gone
    assert len(pull_library("org/lib", endpoint=hub, cache_dir=tmp_path / "cache").experts) == 2
    pinned = pull_library("org/lib", sha, endpoint=hub, cache_dir=tmp_path / "other-cache")  # the replaced version
    assert pinned.manifest == load_library(library_dir).manifest and len(pinned.experts) == 3
    with pytest.raises(RevisionNotFoundError):
        pull_library("org/lib", "0" * 40, endpoint=hub, cache_dir=tmp_path / "other-cache")


def test_earlier_commits_stay_readable_until_their_files_change_on_disk(hub: HubURL, hub_root: Path,
                                                                      tmp_path: Path) -> None:
    api = HfApi(endpoint=hub, token=TOKEN)
    api.create_repo("org/repo")
    first = api.create_commit("org/repo", [CommitOperationAdd("a.txt", b"one"), CommitOperationAdd("b.txt", b"kept")],
                              commit_message="first").oid
    second = api.create_commit("org/repo", [CommitOperationAdd("a.txt", b"two"), CommitOperationDelete("b.txt")],
                               commit_message="second").oid
    assert api.model_info("org/repo").sha == second
    old = api.model_info("org/repo", revision=first)
    assert old.sha == first and sorted(s.rfilename for s in old.siblings) == ["a.txt", "b.txt"]
    got = api.hf_hub_download("org/repo", "a.txt", revision=first, cache_dir=tmp_path / "c1")
    assert Path(got).read_bytes() == b"one"
    assert (hub_root / HISTORY_DIR / MODEL / "org" / "repo" / first / "b.txt").is_file()
    assert [r.id for r in api.list_models()] == ["org/repo"]  # history is hidden: listed nowhere

    kept = next((hub_root / ".history").rglob("b.txt"))
    kept.write_bytes(b"edited in place")  # that version is no longer what its sha names
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/repo", revision=first)

    again = api.create_commit("org/repo", [CommitOperationAdd("a.txt", b"one"), CommitOperationAdd("b.txt", b"kept")],
                              commit_message="the first version again").oid
    assert again == first  # content addressed
    api.create_commit("org/repo", [CommitOperationAdd("c.txt", b"three")], commit_message="third")
    assert api.model_info("org/repo", revision=first).sha == first  # the genuine version replaced the stale copy
    assert Path(api.hf_hub_download("org/repo", "b.txt", revision=first, cache_dir=tmp_path / "c2")).read_bytes() \
        == b"kept"


def test_a_read_only_hub_refuses_pushes(library_dir: Path, hub_root: Path) -> None:
    with serve_in_thread(hub_root) as url:
        with pytest.raises(HfHubHTTPError, match="read-only") as err:
            push_library(library_dir, "org/lib", token=TOKEN, endpoint=url)
        assert err.value.response.status_code == 403
        assert _post(url, "/api/models/org/lib/commit/main", _commit(_add("a.txt")))[0] == 403
    assert _repos(hub_root) == []


def test_writes_need_a_bearer_token(library_dir: Path, hub: HubURL, hub_root: Path) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=hub, token=False).create_repo("org/lib")
    assert err.value.response.status_code == 401
    assert _post(hub, "/api/repos/create", b'{"name": "lib", "organization": "org"}', token=None)[0] == 401
    assert _repos(hub_root) == []

    with serve_in_thread(hub_root, writable=True, write_token="s3cret") as url:
        with pytest.raises(HfHubHTTPError, match="may not write"):
            push_library(library_dir, "org/lib", token=TOKEN, endpoint=url)
        assert push_library(library_dir, "org/lib", token="s3cret", endpoint=url, private=True)
    assert json.loads((hub_root / "org" / "lib" / ".hub.json").read_text()) == {"private": True}


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../x", "a//x", "./x", ".hub.json", ".git/config",
                                  "a\\..\\x", "a/.secret", "x\u0000y", ""])
def test_commits_with_unsafe_paths_are_refused_and_write_nothing(hub: HubURL, hub_root: Path, path: str) -> None:
    HfApi(endpoint=hub, token=TOKEN).create_repo("org/repo")
    before = _files(hub_root.parent)
    status, answer = _post(hub, "/api/models/org/repo/commit/main", _commit(_add("ok.txt"), _add(path)))
    assert status == 400 and "invalid path" in answer["error"]
    status, _ = _post(hub, "/api/models/org/repo/preupload/main", json.dumps({"files": [{"path": path}]}).encode())
    assert status == 400
    assert _files(hub_root.parent) == before


def test_a_commit_is_all_or_nothing_and_never_leaves_the_repo(hub: HubURL, hub_root: Path, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub, token=TOKEN)
    api.create_repo("org/repo")
    sha = api.create_commit("org/repo", [CommitOperationAdd("keep.txt", b"kept")], commit_message="first").oid
    outside = tmp_path / "outside"
    outside.mkdir()
    (hub_root / "org" / "repo" / "link").symlink_to(outside, target_is_directory=True)  # not a repo file
    for ops in [
        (_add("new.txt"), ("deletedFile", {"path": "missing.txt"})),  # fails on its second operation
        (_add("new.txt"), _add("link/escaped.txt")),  # a symlinked folder is never written through
        (_add("new.txt"), ("lfsFile", {"path": "big.bin", "algo": "sha256", "oid": "0" * 64, "size": 1})),
    ]:
        status, _ = _post(hub, "/api/models/org/repo/commit/main", _commit(*ops))
        assert status in (400, 404)
    assert list(outside.iterdir()) == []
    assert api.model_info("org/repo").sha == sha
    assert api.list_repo_files("org/repo") == ["keep.txt"]
    assert sorted(p.name for p in (hub_root / "org").iterdir()) == ["repo"]  # no staging folder left behind

    stale = _commit(_add("new.txt"), parent="0" * 40)
    assert _post(hub, "/api/models/org/repo/commit/main", stale)[0] == 412
    status, answer = _post(hub, "/api/models/org/repo/commit/main", _commit(_add("new.txt"), parent=sha))
    assert status == 200 and answer["commitOid"] == api.model_info("org/repo").sha != sha
    assert answer["commitUrl"] == f"{hub}/org/repo/commit/{answer['commitOid']}"


def test_a_commit_that_can_neither_swap_nor_go_back_keeps_the_repo_and_the_next_writer_puts_it_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "hub"
    (root / "org" / "repo").mkdir(parents=True)
    (root / "org" / "repo" / "precious.bin").write_bytes(b"the only copy")
    writer = RepoWriter(RepoIndex(root))
    rename = os.rename

    def rename_failing_into_the_repo(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == root / "org" / "repo":
            raise OSError(errno.EIO, "I/O error")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_failing_into_the_repo)
    with pytest.raises(ApiError) as err:
        writer.commit(MODEL, "org/repo", [Operation("file", "new.txt", b"x")], None)
    assert err.value.status == 500 and "not applied" in err.value.message
    monkeypatch.undo()
    assert not (root / "org" / "repo").exists()  # both renames failed: the old version waits in staging
    [kept] = (root / "org").glob(".repo.commit-*/old/precious.bin")
    assert kept.read_bytes() == b"the only copy"

    RepoWriter(RepoIndex(root))  # a writer starting on the folder (a restarted hub) puts it back
    assert _files(root / "org") == {"repo/precious.bin": b"the only copy"}


def test_writers_on_one_folder_take_turns_across_processes(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    (root / "org" / "repo").mkdir(parents=True)
    writer = RepoWriter(RepoIndex(root))
    holder = subprocess.Popen(  # another hub process, in the middle of a write
        [sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1], 'a+b'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); sys.stdin.read()", str(root / LOCK_FILE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        commit = threading.Thread(target=writer.commit, args=(MODEL, "org/repo", [Operation("file", "a", b"x")], None))
        commit.start()
        commit.join(0.5)
        assert commit.is_alive() and not (root / "org" / "repo" / "a").exists()  # waits for the other process
        holder.stdin.close()
        commit.join(10)
        assert not commit.is_alive() and (root / "org" / "repo" / "a").read_bytes() == b"x"
    finally:
        holder.kill()
        holder.wait()


def test_upload_folder_and_folder_deletes_work_for_models_and_datasets(hub: HubURL, hub_root: Path,
                                                                      tmp_path: Path) -> None:
    """``upload_folder`` takes the client's streamed path (hf_xet installed); every file still comes inline."""
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "README.md").write_text("---\nlicense: mit\n---\n# data\n")
    (src / "data" / "train.jsonl").write_text('{"prompt": "a", "target": "b"}\n')
    api = HfApi(endpoint=hub, token=TOKEN)
    api.create_repo("org/set", repo_type="dataset")
    sha = api.upload_folder(folder_path=src, repo_id="org/set", repo_type="dataset").oid
    assert _files(hub_root / "datasets" / "org" / "set") == _files(src)
    assert api.dataset_info("org/set").sha == sha and "license:mit" in api.dataset_info("org/set").tags
    api.create_commit("org/set", [CommitOperationDelete("data/")], commit_message="drop", repo_type="dataset")
    assert [p.name for p in (hub_root / "datasets" / "org" / "set").iterdir()] == ["README.md"]
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("org/set", repo_type="dataset")
    assert err.value.response.status_code == 409
    (src / "README.md").write_text("---\nlicense: [mit\n---\n")
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_folder(folder_path=src, repo_id="org/set", repo_type="dataset")


def test_a_tampered_file_fails_the_pull(library_dir: Path, hub: HubURL, hub_root: Path, tmp_path: Path) -> None:
    push_library(library_dir, "org/lib", token=TOKEN, endpoint=hub)
    weights = hub_root / "org" / "lib" / "experts" / "1" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(LibraryError, match="does not match the manifest's sha256"):
        pull_library("org/lib", endpoint=hub, cache_dir=tmp_path / "cache")


def test_a_library_that_does_not_load_is_never_pushed(library_dir: Path, hub: HubURL, hub_root: Path,
                                                      tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name, data in _files(library_dir).items():
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes(data)
    (broken / "routing.safetensors").write_bytes(b"not the routing vectors")
    with pytest.raises(LibraryError, match="routing.safetensors"):
        push_library(broken, "org/lib", token=TOKEN, endpoint=hub)
    assert _repos(hub_root) == []


def test_cli_pushes_and_pulls(library_dir: Path, hub: HubURL, tmp_path: Path) -> None:
    from flows.cli import app

    runner = CliRunner()
    pushed = runner.invoke(app, ["library", "push", str(library_dir), "org/cli-lib", "--endpoint", hub],
                           env={"HF_TOKEN": TOKEN})
    assert pushed.exit_code == 0, pushed.output
    sha = HfApi(endpoint=hub).model_info("org/cli-lib").sha
    assert sha in pushed.output and f"{hub}/org/cli-lib/commit/{sha}" in pushed.output
    assert TOKEN not in pushed.output

    pulled = runner.invoke(app, ["library", "pull", "org/cli-lib", str(tmp_path / "got"), "--endpoint", hub])
    assert pulled.exit_code == 0, pulled.output
    assert sha in pulled.output and "3 experts over org/tiny-base, router arrow" in pulled.output
    assert load_library(tmp_path / "got").manifest == load_library(library_dir).manifest

    refused = runner.invoke(app, ["library", "push", str(library_dir), "org/../lib", "--endpoint", hub])
    assert refused.exit_code == 1 and "push failed" in refused.output and "invalid repo id" in refused.output


def test_a_copied_member_known_only_locally_publishes_no_local_path(
        experts_root: Path, hub: HubURL, hub_root: Path, tmp_path: Path) -> None:
    library = build_library(sources(experts_root, with_repo_ids=False), base_model="org/tiny-base", router="arrow")
    assert all(m.path for m in library.manifest.members)  # the built library still knows where they came from
    folder = save_library(library, tmp_path / "local-lib")
    push_library(folder, "org/local-lib", token=TOKEN, endpoint=hub)
    published = (hub_root / "org" / "local-lib" / "manifest.json").read_text()
    assert str(experts_root) not in published and str(tmp_path) not in published
    pulled = pull_library("org/local-lib", endpoint=hub, cache_dir=tmp_path / "cache")
    torch.testing.assert_close(routed_logits(pulled), routed_logits(library), rtol=0, atol=0)


def test_a_pull_downloads_only_the_files_its_manifest_names(library_dir: Path, hub: HubURL, tmp_path: Path) -> None:
    push_library(library_dir, "org/lib", token=TOKEN, endpoint=hub)
    junk = ["experts/junk/adapter_config.json", "experts/0/deeper/adapter_model.safetensors", "big.bin"]
    HfApi(endpoint=hub, token=TOKEN).create_commit(
        "org/lib", [CommitOperationAdd(path, b"junk" * 1000) for path in junk], commit_message="hostile extras")
    pulled = pull_library("org/lib", endpoint=hub, local_dir=tmp_path / "got")
    assert pulled.manifest == load_library(library_dir).manifest
    got = [f for f in _files(tmp_path / "got") if not f.startswith(".cache/")]  # the client's own bookkeeping
    assert sorted(got) == sorted(_files(library_dir))  # the manifest's files, nothing else


def test_a_push_refuses_a_repo_holding_something_else_unless_forced(library_dir: Path, hub: HubURL,
                                                                   hub_root: Path) -> None:
    api = HfApi(endpoint=hub, token=TOKEN)
    api.create_repo("org/data")
    api.create_commit("org/data", [CommitOperationAdd("weights.bin", b"theirs"),
                                   CommitOperationAdd("README.md", b"# their card")], commit_message="not a library")
    before = _files(hub_root / "org" / "data")
    with pytest.raises(LibraryError, match="already holds files and no library .*weights.bin"):
        push_library(library_dir, "org/data", token=TOKEN, endpoint=hub)
    assert _files(hub_root / "org" / "data") == before
    push_library(library_dir, "org/data", token=TOKEN, endpoint=hub, force=True)
    after = _files(hub_root / "org" / "data")
    assert after["weights.bin"] == b"theirs" and "manifest.json" in after  # forced: the library is added beside

    api.create_repo("org/carded")  # a repo that holds only a card (as one made on the hub's site) is fine
    api.create_commit("org/carded", [CommitOperationAdd("README.md", b"# soon")], commit_message="card")
    push_library(library_dir, "org/carded", token=TOKEN, endpoint=hub)


def test_the_token_reaches_the_member_resolver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *args, **kwargs: calls.append(kwargs) or tmp_path)
    hub_resolver(endpoint="http://hub.invalid", token="member-token")("org/expert", "a" * 40)
    assert calls[0]["token"] == "member-token" and calls[0]["revision"] == "a" * 40


def test_cli_failures_are_one_line_without_a_traceback(library_dir: Path, tmp_path: Path) -> None:
    from flows.cli import app

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runner = CliRunner()
    for args in (["push", str(library_dir), "org/lib"], ["pull", "org/lib", str(tmp_path / "got")]):
        result = runner.invoke(app, ["library", *args, "--endpoint", dead], env={"HF_TOKEN": TOKEN})
        assert result.exit_code == 1, result.output
        assert f"{args[0]} failed" in result.output and "Traceback" not in result.output
        assert TOKEN not in result.output


def test_a_writable_hub_off_loopback_needs_a_write_token(tmp_path: Path) -> None:
    from flows.cli import app

    with pytest.raises(ValueError, match="anyone who reaches it"):
        with serve_in_thread(tmp_path, host="0.0.0.0", writable=True):
            pass
    with pytest.raises(ValueError, match="write token is empty"):
        with serve_in_thread(tmp_path, writable=True, write_token=" "):
            pass
    with serve_in_thread(tmp_path, host="0.0.0.0", writable=True, write_token="s3cret"):
        pass  # with a token it serves
    result = CliRunner().invoke(app, ["hub", "serve", str(tmp_path), "--writable", "--host", "0.0.0.0"],
                                env={"ZOO_HUB_WRITE_TOKEN": ""})
    assert result.exit_code == 2 and "write token" in result.output
