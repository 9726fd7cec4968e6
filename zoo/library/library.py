"""A routed library: experts, their routing vectors and the manifest; built, saved, loaded, attached.

Folder layout::

    manifest.json          base model, router + settings, members (repo id [+ subfolder] + commit sha, hashes,
                           routed_by)
    routing.safetensors    per-module routing vectors (whatever the router fitted)
    experts/<i>/           member i's adapter_config.json + adapter_model.safetensors, copied verbatim (optional)

Nothing is unpickled; every file read back is checked against the manifest's sha256.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.adapters import load_adapter
from zoo.adapters.factors import Adapter
from zoo.adapters.files import ADAPTER_FILES, CONFIG_NAME, WEIGHTS_NAME
from zoo.hub.adapter_ids import adapter_id
from zoo.library.manifest import (
    LibraryError,
    LibraryManifest,
    MemberEntry,
    check_repo_id,
    check_revision,
    check_subfolder,
    manifest_from_json,
)
from zoo.library.resolve import Resolver, hub_resolver
from zoo.library.vectors_file import routing_from_bytes, routing_to_bytes
from zoo.routing import (
    FitData,
    Fitted,
    ModuleRouting,
    RoutingHandle,
    config_settings,
    get_router,
    route_model,
    split_settings,
)

MANIFEST = "manifest.json"
ROUTING = "routing.safetensors"
EXPERTS = "experts"


@dataclass(frozen=True)
class MemberSource:
    """A member to build from: its local folder, and where it lives on the hub if it came from there."""

    path: Path
    repo_id: str | None = None
    revision: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    subfolder: str = ""  # the adapter's folder in its hub repo ('' at the root)


def member_from_repo(
    repo_id: str, revision: str, resolver: Resolver | None = None, labels: Mapping[str, str] | None = None,
    subfolder: str = "",
) -> MemberSource:
    """A member named by hub repo id + commit sha (and its folder in the repo), its files fetched by
    ``resolver`` (default: the hub cache); named by its adapter id."""
    folder = (resolver or hub_resolver())(check_repo_id(repo_id), check_revision(revision), subfolder)
    return MemberSource(folder, repo_id=repo_id, revision=revision, name=adapter_id(repo_id, subfolder),
                        labels=dict(labels or {}), subfolder=subfolder)


@dataclass
class Library:
    """Loaded experts (``experts[i]`` is member ``i``), ``routing`` per module, the manifest, the members'
    folders, and the router's own ``state`` tensors."""

    manifest: LibraryManifest
    experts: list[Adapter]
    routing: dict[str, ModuleRouting]
    member_dirs: list[Path]
    state: dict[str, torch.Tensor] = field(default_factory=dict)

    def route(self, model: nn.Module) -> RoutingHandle:
        """Make ``model`` (the base, loaded by the caller) route over this library, in place."""
        m = self.manifest
        return route_model(model, self.experts, self.routing, m.router, m.settings,
                           routed_by=[member.routed_by for member in m.members], state=self.state)


def build_library(
    members: Sequence[MemberSource],
    base_model: str,
    router: str,
    settings: Mapping[str, Any] | None = None,
    data: FitData | None = None,
    fitted: Fitted | None = None,
    base_revision: str | None = None,
) -> Library:
    """Load the members and fit ``router`` on them (its routing vectors and per-member notes).

    ``settings`` mix the router's own settings and its fitting settings (``zoo.routing.split_settings``);
    ``data`` gives a data-aware router the members' training examples and the base model. ``fitted``: a fit
    made elsewhere (e.g. gates trained beforehand), used as it is.
    """
    if not members:
        raise LibraryError("a library needs at least one member")
    config, fit_config = split_settings(router, settings)
    experts = [load_adapter(m.path) for m in members]
    fitted = fitted or get_router(router).fit(experts, config, fit_config, data)
    if len(fitted.routed_by) != len(members):
        raise LibraryError(f"the fit describes {len(fitted.routed_by)} members, the library has {len(members)}")
    entries = [
        MemberEntry(
            name=m.name or (adapter_id(m.repo_id, m.subfolder) if m.repo_id else Path(m.path).name),
            config_sha256=_sha256(Path(m.path) / CONFIG_NAME),
            weights_sha256=_sha256(Path(m.path) / WEIGHTS_NAME),
            routed_by=routed_by,
            repo_id=check_repo_id(m.repo_id) if m.repo_id else None,
            revision=check_revision(m.revision) if m.revision else None,
            path=None if m.repo_id and m.revision else str(Path(m.path).resolve()),
            labels=dict(m.labels),
            subfolder=check_subfolder(m.repo_id or "", m.subfolder) if m.repo_id and m.subfolder else "",
        )
        for m, routed_by in zip(members, fitted.routed_by, strict=True)
    ]
    manifest = LibraryManifest(
        base_model=base_model,
        base_revision=base_revision,
        router=router,
        settings=config_settings(config),
        members=entries,
        routing_sha256=hashlib.sha256(routing_to_bytes(fitted.routing, fitted.state)).hexdigest(),
    )
    return Library(manifest, experts, fitted.routing, [Path(m.path) for m in members], dict(fitted.state))


def save_library(library: Library, folder: str | Path, copy_experts: bool = True) -> Path:
    """Write the library into ``folder`` (new or empty). Without ``copy_experts`` members are referenced
    by repo id + revision (or their local path) and resolved again at load time."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise LibraryError(f"{folder} is not empty; save a library into a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    members = []
    for i, (entry, source) in enumerate(zip(library.manifest.members, library.member_dirs, strict=True)):
        if copy_experts:
            target = folder / EXPERTS / str(i)
            target.mkdir(parents=True)
            for file in ADAPTER_FILES:
                shutil.copyfile(source / file, target / file)
                _verify(target / file, entry.config_sha256 if file == CONFIG_NAME else entry.weights_sha256)
        elif (entry.repo_id is None or entry.revision is None) and entry.path is None:
            raise LibraryError(f"member {i} ({entry.name}) has no repo id + revision or path; copy it in")
        # A copied member loads from experts/<i>/: its source path would only leak the builder's file system.
        members.append(replace(entry, copied=copy_experts, path=None if copy_experts else entry.path))
    data = routing_to_bytes(library.routing, library.state)
    (folder / ROUTING).write_bytes(data)
    manifest = replace(library.manifest, members=members, routing_sha256=hashlib.sha256(data).hexdigest())
    (folder / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    return folder


def load_library(
    folder: str | Path, resolver: Resolver | None = None, allow_local_paths: bool = False,
    dtype: torch.dtype = torch.float32,
) -> Library:
    """Read a library folder, verify every hash and load its experts.

    A member that is not copied in is resolved by ``resolver(repo_id, revision, subfolder)`` (default: the hub
    cache) or, only with ``allow_local_paths``, from its recorded local path.
    """
    folder = Path(folder)
    manifest = read_manifest(folder / MANIFEST)
    data = (folder / ROUTING).read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest.routing_sha256:
        raise LibraryError(f"{ROUTING} does not match the manifest's hash")
    routing, state = routing_from_bytes(data)
    dirs = [_member_dir(folder, i, m, resolver, allow_local_paths) for i, m in enumerate(manifest.members)]
    for member, member_dir in zip(manifest.members, dirs, strict=True):
        _verify(member_dir / CONFIG_NAME, member.config_sha256)
        _verify(member_dir / WEIGHTS_NAME, member.weights_sha256)
    experts = [load_adapter(d, dtype=dtype) for d in dirs]
    return Library(manifest, experts, routing, dirs, state)


def read_manifest(path: str | Path) -> LibraryManifest:
    """The manifest at ``path``, validated (no file it names is read)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LibraryError(f"cannot read {path}: {err}") from err
    return manifest_from_json(raw)


def _member_dir(folder: Path, index: int, member: MemberEntry, resolver: Resolver | None, local: bool) -> Path:
    if member.copied:
        return folder / EXPERTS / str(index)
    if member.repo_id is not None and member.revision is not None:
        return (resolver or hub_resolver())(member.repo_id, member.revision, member.subfolder)
    if member.path is not None and local:
        return Path(member.path)
    raise LibraryError(f"member {index} ({member.name}) is neither copied in nor resolvable "
                       f"(local paths are used only with allow_local_paths=True)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, expected: str) -> None:
    if not path.is_file():
        raise LibraryError(f"missing member file {path}")
    if _sha256(path) != expected:
        raise LibraryError(f"{path} does not match the manifest's sha256; the member changed since the build")
