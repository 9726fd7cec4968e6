"""The local hub through the real ``huggingface_hub`` client: listings, info, trees, downloads, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from safetensors.torch import save_file

from zoo.localhub import HubURL, serve_in_thread
from zoo.localhub.files import RangeNotSatisfiable, parse_range

PAGE = 2  # a tiny page size, so every listing below spans several pages
DAY = 86_400


def _card(**fields: object) -> str:
    return "---\n" + json.dumps(fields) + "\n---\n# Card\n"  # JSON is YAML


def _adapter(repo: Path, rank: int, card: dict, meta: dict | None = None) -> None:
    repo.mkdir(parents=True)
    save_file({"lora_A": torch.randn(rank, 16), "lora_B": torch.zeros(16, rank)}, repo / "adapter_model.safetensors")
    (repo / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank, "peft_type": "LORA"}))
    (repo / "README.md").write_text(_card(**card))
    if meta is not None:
        (repo / ".hub.json").write_text(json.dumps(meta))


def build_zoo(root: Path) -> Path:
    """Five models (four PEFT adapters of two bases, one base model with bad card) and two datasets."""
    peft = {"library_name": "peft", "license": "mit"}
    _adapter(
        root / "alice" / "lora-math",
        4,
        {**peft, "base_model": "tiny/base", "tags": ["lora", "math"], "datasets": ["alice/math-data"],
         "pipeline_tag": "text-generation"},
        {"downloads": 30, "likes": 3, "createdAt": "2024-01-02T03:04:05Z"},
    )  # fmt: skip
    notes = root / "alice" / "lora-math" / "sub" / "extra" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("hello from a subfolder")
    text_card = {**peft, "base_model": "tiny/base", "tags": ["lora"]}
    _adapter(root / "alice" / "lora-text", 8, text_card, {"downloads": 10, "likes": 7})
    _adapter(root / "bob" / "lora-lists", 4, {**peft, "base_model": "other/base"}, {"downloads": 20, "likes": 1})
    _adapter(root / "carol" / "lora-nocard", 4, {})
    (root / "carol" / "lora-nocard" / "README.md").write_text("---\ntags: [unclosed\n---\nmalformed front matter\n")
    base = root / "bob" / "base-model"
    base.mkdir(parents=True)
    weights = {"embed.weight": torch.zeros(10, 4), "head.weight": torch.zeros(4, 10, dtype=torch.float16)}
    save_file(weights, base / "model.safetensors")
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (base / "README.md").write_text(_card(license="apache-2.0"))
    math = root / "datasets" / "alice" / "math-data"
    math.mkdir(parents=True)
    (math / "train.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (math / "README.md").write_text(_card(license="cc-by-4.0", tags=["math"], task_categories=["text-generation"]))
    lists = root / "datasets" / "bob" / "lists-data" / "data"
    lists.mkdir(parents=True)
    (lists / "train.jsonl").write_text('{"prompt": "[1,2]"}\n')
    # Distinct, known modification times: lastModified sorting and values are checked against them.
    oldest_first = ["bob/base-model", "carol/lora-nocard", "bob/lora-lists", "alice/lora-text", "alice/lora-math"]
    for i, repo in enumerate(oldest_first):
        for f in (root / repo).rglob("*"):
            os.utime(f, (1_700_000_000 + i * DAY, 1_700_000_000 + i * DAY))
    return root


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_zoo(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="module")
def hub(zoo_root: Path) -> Iterator[HubURL]:
    with serve_in_thread(zoo_root, page_size=PAGE) as url:
        yield url


@pytest.fixture(scope="module")
def api(hub: HubURL) -> HfApi:
    return HfApi(endpoint=hub)


def _ids(infos: object) -> list[str]:
    return [i.id for i in infos]  # type: ignore[attr-defined]


# -- listings ------------------------------------------------------------------------------------
def test_list_models_follows_link_pagination(hub: HubURL, api: HfApi) -> None:
    before = hub.requests.by_kind().get("list", 0)
    ids = _ids(api.list_models())
    assert ids == ["alice/lora-math", "alice/lora-text", "bob/base-model", "bob/lora-lists", "carol/lora-nocard"]
    assert hub.requests.by_kind()["list"] - before == 3  # 5 repos, 2 per page


def test_list_models_search_author_filter(api: HfApi) -> None:
    assert _ids(api.list_models(search="LORA-L")) == ["bob/lora-lists"]
    assert _ids(api.list_models(author="bob")) == ["bob/base-model", "bob/lora-lists"]
    assert _ids(api.list_models(author="bob", search="lora")) == ["bob/lora-lists"]
    adapters_of_tiny = api.list_models(filter=["peft", "base_model:adapter:tiny/base"])
    assert _ids(adapters_of_tiny) == ["alice/lora-math", "alice/lora-text"]
    assert _ids(api.list_models(filter="license:apache-2.0")) == ["bob/base-model"]
    assert _ids(api.list_models(trained_dataset="alice/math-data")) == ["alice/lora-math"]
    assert _ids(api.list_models(pipeline_tag="text-generation")) == ["alice/lora-math"]
    assert _ids(api.list_models(filter=["math", "lora"])) == ["alice/lora-math"]
    assert _ids(api.list_models(search="nothing-like-this")) == []


def test_list_models_sort_and_limit(hub: HubURL, api: HfApi) -> None:
    assert _ids(api.list_models(sort="downloads"))[:3] == ["alice/lora-math", "bob/lora-lists", "alice/lora-text"]
    assert _ids(api.list_models(sort="likes"))[:2] == ["alice/lora-text", "alice/lora-math"]
    newest_first = ["alice/lora-math", "alice/lora-text", "bob/lora-lists", "carol/lora-nocard", "bob/base-model"]
    assert _ids(api.list_models(sort="last_modified")) == newest_first
    before = hub.requests.by_kind()["list"]
    assert _ids(api.list_models(sort="downloads", limit=3)) == ["alice/lora-math", "bob/lora-lists", "alice/lora-text"]
    assert hub.requests.by_kind()["list"] - before == 2  # 3 of 5 entries, 2 per page: the limit stops the pages
    ascending = httpx.get(f"{hub}/api/models", params={"sort": "downloads", "direction": "1", "limit": 1}).json()
    assert [m["id"] for m in ascending] == ["bob/base-model"]  # downloads 0, first by id
    # A cursor whose listing the server no longer holds (e.g. after a restart) recomputes the same query.
    stale = base64.urlsafe_b64encode(b"gone:3").decode()
    page = httpx.get(f"{hub}/api/models", params={"sort": "downloads", "cursor": stale}).json()
    assert [m["id"] for m in page] == ["bob/base-model", "carol/lora-nocard"]  # ties by id


def test_list_models_fields_default_full_carddata_expand(api: HfApi) -> None:
    plain = next(iter(api.list_models(search="lora-math")))
    assert plain.downloads == 30 and plain.likes == 3 and plain.library_name == "peft"
    assert "base_model:tiny/base" in plain.tags and plain.sha is None and plain.siblings is None

    full = next(iter(api.list_models(search="lora-math", full=True, cardData=True)))
    assert full.sha and full.last_modified and full.card_data.base_model == "tiny/base"
    assert {s.rfilename for s in full.siblings} >= {"adapter_model.safetensors", "sub/extra/notes.txt"}

    expanded = next(iter(api.list_models(search="lora-math", expand=["sha", "siblings", "cardData", "gated"])))
    assert expanded.sha == full.sha and expanded.card_data.tags == ["lora", "math"] and expanded.gated is False
    assert expanded.downloads is None and expanded.tags is None  # only what was asked for


def test_list_rejects_unknown_expand(hub: HubURL) -> None:
    answer = httpx.get(f"{hub}/api/models", params={"expand[]": "notAField"})
    assert answer.status_code == 400 and "notAField" in answer.json()["error"]


def test_list_datasets(api: HfApi) -> None:
    assert _ids(api.list_datasets()) == ["alice/math-data", "bob/lists-data"]
    assert _ids(api.list_datasets(filter="license:cc-by-4.0")) == ["alice/math-data"]
    assert _ids(api.list_datasets(task_categories="text-generation")) == ["alice/math-data"]
    assert _ids(api.list_datasets(search="lists", author="bob")) == ["bob/lists-data"]
    (info,) = api.list_datasets(search="math", expand=["cardData", "siblings"])
    assert info.card_data.license == "cc-by-4.0"
    assert [s.rfilename for s in info.siblings] == ["README.md", "train.jsonl"]


# -- repo info and trees -------------------------------------------------------------------------
def test_model_info(zoo_root: Path, api: HfApi) -> None:
    info = api.model_info("alice/lora-math")
    folder = zoo_root / "alice" / "lora-math"
    assert len(info.sha) == 40 and int(info.sha, 16) >= 0
    assert info.last_modified.timestamp() == 1_700_000_000 + 4 * DAY
    assert info.created_at.isoformat() == "2024-01-02T03:04:05+00:00"
    assert (info.downloads, info.likes, info.private, info.gated, info.author) == (30, 3, False, False, "alice")
    assert {"peft", "lora", "math", "license:mit", "dataset:alice/math-data", "base_model:tiny/base",
            "base_model:adapter:tiny/base", "text-generation", "safetensors"} <= set(info.tags)  # fmt: skip
    assert info.card_data.datasets == ["alice/math-data"] and info.pipeline_tag == "text-generation"
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert ".hub.json" not in sizes
    on_disk = [p for p in folder.rglob("*") if p.is_file() and p.name != ".hub.json"]
    assert sizes == {p.relative_to(folder).as_posix(): p.stat().st_size for p in on_disk}
    assert info.safetensors.parameters == {"F32": 4 * 16 * 2} and info.safetensors.total == 128
    assert api.model_info("alice/lora-math", revision=info.sha).sha == info.sha
    assert api.model_info("alice/lora-math", expand=["sha"]).downloads is None
    assert api.model_info("carol/lora-nocard").card_data is None  # malformed front matter: served without a card


def test_dataset_info(api: HfApi) -> None:
    info = api.dataset_info("bob/lists-data", files_metadata=True)
    assert [(s.rfilename, s.size) for s in info.siblings] == [("data/train.jsonl", 20)]
    assert api.repo_info("alice/math-data", repo_type="dataset").card_data.tags == ["math"]


def test_list_repo_tree(api: HfApi) -> None:
    top = {(type(e).__name__, e.path) for e in api.list_repo_tree("alice/lora-math")}
    assert top == {
        ("RepoFile", "README.md"), ("RepoFile", "adapter_config.json"),
        ("RepoFile", "adapter_model.safetensors"), ("RepoFolder", "sub"),
    }  # fmt: skip
    everything = list(api.list_repo_tree("alice/lora-math", recursive=True))  # 6 entries over 3 pages
    assert [e.path for e in everything] == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "sub", "sub/extra", "sub/extra/notes.txt",
    ]  # fmt: skip
    assert [e.path for e in api.list_repo_tree("alice/lora-math", path_in_repo="sub/extra")] == ["sub/extra/notes.txt"]
    notes = everything[-1]
    assert notes.size == 22 and len(notes.blob_id) == 40
    assert api.list_repo_files("bob/lists-data", repo_type="dataset") == ["data/train.jsonl"]
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("alice/lora-math", path_in_repo="nope"))


# -- downloads -----------------------------------------------------------------------------------
def test_hf_hub_download_by_branch_and_by_sha(zoo_root: Path, hub: HubURL, api: HfApi, tmp_path: Path) -> None:
    before = hub.requests.by_kind()
    path = hf_hub_download("alice/lora-math", "sub/extra/notes.txt", endpoint=hub, cache_dir=tmp_path)
    assert Path(path).read_text() == "hello from a subfolder"
    after = hub.requests.by_kind()
    assert after["file-head"] - before.get("file-head", 0) == 1 and after["file-get"] - before.get("file-get", 0) == 1
    sha = api.model_info("alice/lora-math").sha
    assert sha in path  # cached under the commit the server reported
    by_sha = hf_hub_download("alice/lora-math", "adapter_config.json", revision=sha, endpoint=hub, cache_dir=tmp_path)
    assert Path(by_sha).read_bytes() == (zoo_root / "alice" / "lora-math" / "adapter_config.json").read_bytes()
    data = hf_hub_download("alice/math-data", "train.jsonl", repo_type="dataset", endpoint=hub, cache_dir=tmp_path)
    assert json.loads(Path(data).read_text())["answer"] == "2"


def test_snapshot_download(zoo_root: Path, hub: HubURL, tmp_path: Path) -> None:
    snapshot = Path(snapshot_download("alice/lora-math", endpoint=hub, cache_dir=tmp_path))
    source = zoo_root / "alice" / "lora-math"
    got = {p.relative_to(snapshot).as_posix(): p.read_bytes() for p in snapshot.rglob("*") if p.is_file()}
    want = {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    del want[".hub.json"]
    assert got == want
    local = Path(snapshot_download("bob/lists-data", repo_type="dataset", endpoint=hub, local_dir=tmp_path / "ds"))
    assert (local / "data" / "train.jsonl").read_text().startswith('{"prompt"')


def test_safetensors_metadata_through_ranges(hub: HubURL, api: HfApi) -> None:
    before = hub.requests.by_kind().get("file-get", 0)
    meta = api.get_safetensors_metadata("bob/base-model")
    tensors = meta.files_metadata["model.safetensors"].tensors
    assert tensors["embed.weight"].shape == [10, 4] and tensors["head.weight"].dtype == "F16"
    adapter = api.parse_safetensors_file_metadata("alice/lora-text", "adapter_model.safetensors")
    assert adapter.tensors["lora_A"].shape == [8, 16]
    assert hub.requests.by_status().get(206, 0) >= 2 and hub.requests.by_kind()["file-get"] - before == 2


def test_file_and_repo_exists(api: HfApi) -> None:
    assert api.file_exists("alice/lora-math", "sub/extra/notes.txt")
    assert not api.file_exists("alice/lora-math", "missing.bin")
    assert not api.file_exists("alice/lora-math", ".hub.json")
    assert api.repo_exists("alice/math-data", repo_type="dataset")
    assert not api.repo_exists("alice/math-data")  # a dataset is not a model
    assert not api.revision_exists("alice/lora-math", "v2")


def test_typed_errors(hub: HubURL, api: HfApi, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "x.txt", endpoint=hub, cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/lora-math", revision="v2")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/lora-math", "README.md", revision="0" * 40, endpoint=hub, cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/lora-math", "missing.bin", endpoint=hub, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_repo_tree("nobody/nothing"))


def test_resolve_headers_and_ranges(zoo_root: Path, hub: HubURL, api: HfApi) -> None:
    body = (zoo_root / "alice" / "lora-math" / "sub" / "extra" / "notes.txt").read_bytes()
    url = f"{hub}/alice/lora-math/resolve/main/sub/extra/notes.txt"
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["etag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert head.headers["x-repo-commit"] == api.model_info("alice/lora-math").sha
    assert head.headers["content-length"] == str(len(body)) and head.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={"Range": "bytes=6-9"})
    assert part.status_code == 206 and part.content == body[6:10]
    assert part.headers["content-range"] == f"bytes 6-9/{len(body)}"
    assert httpx.get(url, headers={"Range": "bytes=-4"}).content == body[-4:]
    assert httpx.get(url, headers={"Range": "bytes=0-1,4-5"}).status_code == 200  # multi-range: whole file
    refused = httpx.get(url, headers={"Range": f"bytes={len(body)}-"})
    assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{len(body)}"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [(None, 10, None), ("bytes=0-100000", 10, (0, 10)), ("bytes=3-", 10, (3, 10)), ("bytes=-3", 10, (7, 10)),
     ("bytes=5-2", 10, None), ("items=0-1", 10, None), ("bytes=-", 10, None)],
)  # fmt: skip
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


def test_parse_range_beyond_end() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=10-", 10)


# -- the commit sha follows the content ----------------------------------------------------------
def test_sha_is_a_content_hash(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    _adapter(root / "dora" / "lora", 4, {"library_name": "peft"}, {"downloads": 1})
    config = root / "dora" / "lora" / "adapter_config.json"
    original = config.read_bytes()
    with serve_in_thread(root) as url:
        api = HfApi(endpoint=url)
        first = api.model_info("dora/lora").sha
        assert api.model_info("dora/lora").sha == first  # stable while nothing changes
        (root / "dora" / "lora" / ".hub.json").write_text(json.dumps({"downloads": 99}))
        assert (api.model_info("dora/lora").sha, api.model_info("dora/lora").downloads) == (first, 99)

        config.write_bytes(original.replace(b'"r": 4', b'"r": 8'))
        edited = api.model_info("dora/lora").sha
        assert edited != first
        with pytest.raises(RevisionNotFoundError):  # the old commit is gone from a folder hub
            api.model_info("dora/lora", revision=first)
        got = hf_hub_download("dora/lora", "adapter_config.json", revision=edited, endpoint=url, cache_dir=tmp_path)
        assert json.loads(Path(got).read_text())["r"] == 8

        config.write_bytes(original)  # same bytes again: same commit
        assert api.model_info("dora/lora").sha == first
        shutil.copy(config, root / "dora" / "lora" / "copy.json")  # a new file is new content
        assert api.model_info("dora/lora").sha not in (first, edited)


def test_hub_json_metadata_is_validated(tmp_path: Path) -> None:
    _adapter(tmp_path / "org" / "gated", 4, {}, {"gated": "manual", "private": True, "likes": 2})
    _adapter(tmp_path / "org" / "sloppy", 4, {}, {"downloads": "many", "gated": "yes", "createdAt": "someday"})
    (tmp_path / "org" / "broken").mkdir()
    (tmp_path / "org" / "broken" / ".hub.json").write_text("{not json")
    with serve_in_thread(tmp_path) as url:
        api = HfApi(endpoint=url)
        gated = api.model_info("org/gated")
        assert (gated.gated, gated.private, gated.likes, gated.downloads) == ("manual", True, 2, 0)
        sloppy = api.model_info("org/sloppy")
        assert (sloppy.downloads, sloppy.gated) == (0, False) and sloppy.created_at is not None
        assert api.model_info("org/broken").siblings == []  # an empty repo, still a repo
        assert _ids(api.list_models(gated=True)) == ["org/gated"]
        assert _ids(api.list_models(gated=False)) == ["org/broken", "org/sloppy"]


def test_cli_serves_a_folder(zoo_root: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "flows.cli", "hub", "serve", str(zoo_root), "--port", "0", "--page-size", "3"]
    with open(tmp_path / "stderr.log", "w+") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
            assert "5 model repos and 2 dataset repos" in lines[0], (lines, log.seek(0) or log.read())
            assert lines[1].startswith("HF_ENDPOINT=http://127.0.0.1:")
            endpoint = lines[1].strip().removeprefix("HF_ENDPOINT=")
            # The socket listens before the URL is printed, so the first request may come at once.
            listed = HfApi(endpoint=endpoint).list_models(author="alice")
            assert _ids(listed) == ["alice/lora-math", "alice/lora-text"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
