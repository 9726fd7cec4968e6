"""Library artefact: save/load round-trips to the same routed outputs, every file is hash-checked."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from lora_testing import tiny_llama
from test_routing import EXPERT_CONFIGS, peft_model, tokens

from zoo.library import (
    LibraryError,
    MemberSource,
    build_library,
    folder_resolver,
    hub_resolver,
    load_library,
    member_from_repo,
    save_library,
)
from zoo.routing import Fitted
from zoo.routing.arrow import PROTOTYPE
from zoo.routing.phatgoose import GATE, gated_routing

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A folder of repos laid out like a hub (``<org>/<name>/``), one PEFT expert each."""
    root = tmp_path_factory.mktemp("hub")
    for i in range(len(EXPERT_CONFIGS)):
        peft_model(i).save_pretrained(root / "org" / f"expert-{i}")
    return root


def sources(root, with_repo_ids: bool = True) -> list[MemberSource]:
    if with_repo_ids:
        return [member_from_repo(f"org/expert-{i}", SHA, folder_resolver(root), labels={"skill": f"skill-{i % 2}"})
                for i in range(len(EXPERT_CONFIGS))]
    return [MemberSource(root / "org" / f"expert-{i}") for i in range(len(EXPERT_CONFIGS))]


def gates_for(library_members: int, gated: list[int], modules) -> dict[int, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    return {e: {name: torch.randn(entry.vectors.shape[1], generator=gen) for name, entry in modules.items()
                if e in entry.experts} for e in gated if e < library_members}


@torch.no_grad()
def routed_logits(library) -> torch.Tensor:
    model = tiny_llama().eval()
    library.route(model)
    return model(input_ids=tokens(seed=9)).logits


def test_arrow_library_round_trips_with_copied_experts(hub_folder, tmp_path):
    library = build_library(sources(hub_folder), base_model="org/tiny-base", router="arrow",
                            settings={"top_k": 2, "temperature": 0.5})
    folder = save_library(library, tmp_path / "lib")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        f"experts/{i}/{f}" for i in range(3) for f in ("adapter_config.json", "adapter_model.safetensors")
    ] + ["manifest.json", "routing.safetensors"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["base_model"] == {"name": "org/tiny-base", "revision": None}
    assert manifest["router"] == {"kind": "arrow", "settings": {"top_k": 2, "temperature": 0.5, "centre": "none",
                                                              "normalise": False}}
    assert manifest["format_version"] == 3
    assert [(m["repo_id"], m["revision"], m["copied"], m["routed_by"]) for m in manifest["members"]] == [
        (f"org/expert-{i}", SHA, True, PROTOTYPE) for i in range(3)]
    assert manifest["members"][1]["labels"] == {"skill": "skill-1"} and manifest["members"][1]["name"] == "org/expert-1"
    reloaded = load_library(folder)
    assert reloaded.manifest.members == [m for m in reloaded.manifest.members if m.copied]
    assert set(reloaded.routing) == set(library.routing)
    for name, entry in library.routing.items():
        assert reloaded.routing[name].experts == entry.experts
        torch.testing.assert_close(reloaded.routing[name].vectors, entry.vectors, rtol=0, atol=0)
    torch.testing.assert_close(routed_logits(reloaded), routed_logits(library), rtol=0, atol=0)


def test_phatgoose_library_records_which_experts_fell_back_to_arrow(hub_folder, tmp_path):
    arrow = build_library(sources(hub_folder), base_model="org/tiny-base", router="arrow")
    gates = gates_for(3, [0, 2], arrow.routing)
    library = build_library(sources(hub_folder), base_model="org/tiny-base", router="phatgoose",
                            fitted=gated_routing(arrow.experts, gates))
    assert [m.routed_by for m in library.manifest.members] == [GATE, PROTOTYPE, GATE]
    q = "model.layers.0.self_attn.q_proj"
    torch.testing.assert_close(library.routing[q].vectors[0], gates[0][q])
    torch.testing.assert_close(library.routing[q].vectors[1], arrow.routing[q].vectors[1])
    folder = save_library(library, tmp_path / "lib", copy_experts=False)
    assert not (folder / "experts").exists()
    assert [m["routed_by"] for m in json.loads((folder / "manifest.json").read_text())["members"]] == [
        GATE, PROTOTYPE, GATE]
    reloaded = load_library(folder, resolver=folder_resolver(hub_folder))
    assert reloaded.manifest == library.manifest
    assert reloaded.member_dirs[1] == (hub_folder / "org" / "expert-1").resolve()
    torch.testing.assert_close(routed_logits(reloaded), routed_logits(library), rtol=0, atol=0)


def test_local_path_members_load_only_when_allowed(hub_folder, tmp_path):
    library = build_library(sources(hub_folder, with_repo_ids=False), base_model="tiny", router="arrow")
    folder = save_library(library, tmp_path / "lib", copy_experts=False)
    with pytest.raises(LibraryError, match="allow_local_paths"):
        load_library(folder)
    reloaded = load_library(folder, allow_local_paths=True)
    torch.testing.assert_close(routed_logits(reloaded), routed_logits(library), rtol=0, atol=0)


def test_tampered_files_and_hostile_names_are_refused(hub_folder, tmp_path):
    library = build_library(sources(hub_folder), base_model="org/tiny-base", router="arrow")
    folder = save_library(library, tmp_path / "lib")
    with pytest.raises(LibraryError, match="not empty"):
        save_library(library, folder)

    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    weights = changed / "experts" / "1" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(LibraryError, match="sha256"):
        load_library(changed)

    changed = tmp_path / "changed-routing"
    shutil.copytree(folder, changed)
    routing = changed / "routing.safetensors"
    routing.write_bytes(routing.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(LibraryError, match="routing.safetensors"):
        load_library(changed)

    raw = json.loads((folder / "manifest.json").read_text())
    for number, (edit, message) in enumerate([
        (lambda m: m["members"][0].update(repo_id="../../etc", copied=False), "invalid repo id"),
        (lambda m: m["members"][0].update(revision="main"), "commit sha"),
        (lambda m: m["members"][0].update(repo_id="org/expert-0", subfolder="../../etc"), "plain relative path"),
        (lambda m: m["members"][0].update(routed_by=""), "routed_by"),
        (lambda m: m["members"][0].update(routed_by=None), "routed_by"),
        (lambda m: m.update(format_version=4), "version 1 or 2 or 3"),
        (lambda m: m.update(format="pickle"), "manifest"),
    ]):
        bad = tmp_path / f"bad-{number}"
        shutil.copytree(folder, bad)
        manifest = json.loads(json.dumps(raw))
        edit(manifest)
        (bad / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(LibraryError, match=message):
            load_library(bad)

    with pytest.raises(LibraryError, match="describes 1 members"):
        build_library(sources(hub_folder), base_model="b", router="arrow", fitted=Fitted(library.routing, ["x"]))

    old = tmp_path / "format-1"  # written before routers were plug-ins: still loads, the old field ignored
    shutil.copytree(folder, old)
    (old / "manifest.json").write_text(json.dumps({**raw, "format_version": 1, "arrow_fallback": []}))
    torch.testing.assert_close(routed_logits(load_library(old)), routed_logits(library), rtol=0, atol=0)
    with pytest.raises(LibraryError, match="not a repo folder"):
        folder_resolver(hub_folder)("org/missing", SHA)


def test_members_resolve_through_the_hub_client_pinned_to_their_commit(hub_folder, tmp_path):
    """The real ``huggingface_hub`` client against the local hub: build from the hub, reload from its cache."""
    from huggingface_hub import HfApi

    from zoo.localhub import serve_in_thread

    cache = tmp_path / "hf-cache"
    with serve_in_thread(hub_folder) as url:
        shas = [HfApi(endpoint=str(url)).model_info(f"org/expert-{i}").sha for i in range(2)]
        members = [member_from_repo(f"org/expert-{i}", shas[i], hub_resolver(endpoint=str(url), cache_dir=cache))
                   for i in range(2)]
    assert all(cache in m.path.parents for m in members)
    library = build_library(members, base_model="org/tiny-base", router="arrow")
    folder = save_library(library, tmp_path / "lib", copy_experts=False)
    assert [m["revision"] for m in json.loads((folder / "manifest.json").read_text())["members"]] == shas
    reloaded = load_library(folder, resolver=hub_resolver(cache_dir=cache, local_files_only=True))
    torch.testing.assert_close(routed_logits(reloaded), routed_logits(library), rtol=0, atol=0)
