"""The candidate store: a plain folder is used in place; a URL (here ``file://``, as object storage would be)
is copied to and from a local working folder, and shard results travel through it as JSON."""

from __future__ import annotations

from pathlib import Path

from zoo.candidates.store import CandidateStore


def _folder(root: Path, artifact: str) -> Path:
    folder = root / artifact
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 4}')
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    return folder


def test_a_local_store_is_the_working_folder_itself(tmp_path: Path) -> None:
    store = CandidateStore(tmp_path / "store", tmp_path / "cache")
    assert not store.remote and store.working_dir == tmp_path / "store"
    _folder(store.working_dir, "k1/adapter")
    store.publish("k1/adapter")
    store.fetch("k1/adapter")
    assert not (tmp_path / "cache").exists()  # nothing copied


def test_a_remote_store_carries_folders_and_results_between_machines(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'bucket'}"
    builder = CandidateStore(url, tmp_path / "worker-home")
    _folder(builder.working_dir, "k1/library")
    builder.publish("k1/library")
    builder.publish("k1/library")  # content-addressed: a second publish is a no-op
    builder.write_result("eval-1", {"status": "ok", "rows": [1, 2]})

    reader = CandidateStore(url, tmp_path / "orchestrator-home")
    assert reader.remote and reader.read_result("eval-1") == {"status": "ok", "rows": [1, 2]}
    assert reader.read_result("eval-2") is None
    reader.fetch("k1/library")
    got = tmp_path / "orchestrator-home" / "k1" / "library"
    assert (got / "adapter_config.json").read_text() == '{"r": 4}'
    assert (got / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "bucket").iterdir()) == ["k1", "results"]  # no partial left
    assert sorted(p.name for p in (tmp_path / "bucket" / "k1").iterdir()) == ["library"]
