"""The served folder as an index of repos: scanning, content hashing, cards and metadata.

Layout: ``ROOT/<org>/<name>/...`` are model repos, ``ROOT/datasets/<org>/<name>/...`` dataset repos, and
an optional ``.hub.json`` in a repo gives what only a hub knows (downloads, likes, gated, private,
createdAt). A repo's commit sha is a hash of its paths and file contents, so any edit changes it.

Every request re-reads the folder (one ``stat`` per file), so edits are seen at once, but file
contents are hashed only when a file's (path, size, mtime_ns) changes, and a repo whose files are all
unchanged reuses its previous record whole: listing thousands of repos costs a directory walk.
Filesystem timestamps are coarse (a kernel tick, or seconds), so an edit right after hashing may keep
size and mtime; like git's "racy" check, a file modified less than ``RACY_NS`` before it was hashed is
not trusted from the cache until it has aged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from zoo.localhub.cards import derive_tags, infer_library, parse_front_matter
from zoo.localhub.paths import HUB_META_FILE, SKIPPED_DIRS, is_valid_id_part, split_repo_id

log = logging.getLogger(__name__)

MODEL, DATASET = "model", "dataset"
DATASETS_DIR = "datasets"  # reserved org name: ROOT/datasets/<org>/<name> are dataset repos
HISTORY_DIR = ".history"  # ROOT/.history/<type>/<org>/<name>/<sha>: versions replaced by commits
_SHA = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20
_MAX_SAFETENSORS_HEADER = 100 << 20
_MAX_CARD_CHARS = 1 << 20  # front matter must close within the README's first MiB


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# What ``.hub.json`` may say, and what a valid value is; anything else is ignored with a warning.
_META_KEYS = {
    "downloads": _count,
    "downloadsAllTime": _count,
    "likes": _count,
    "gated": lambda v: v in (False, "auto", "manual"),
    "private": lambda v: isinstance(v, bool),
    "createdAt": lambda v: isinstance(v, str),
    "disabled": lambda v: v in (True, "legal"),  # a realistic hub answers 403 (451 for "legal")
    "formerly": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),  # old ids that redirect here
}
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class FileDigest:
    """What hashing a file's bytes tells: its ETag, its git oid, its safetensors parameter counts."""

    sha256: str
    blob_id: str
    parameters: dict[str, int] | None = None


@dataclass(frozen=True)
class RepoFile:
    path: str  # relative, '/'-separated
    abspath: str  # where the bytes are; only ever taken from the scan, never from a request
    size: int
    mtime_ns: int
    digest: FileDigest


@dataclass(frozen=True)
class Repo:
    type: str
    id: str
    files: tuple[RepoFile, ...]  # sorted by path
    sha: str
    last_modified: str
    created_at: str
    card: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def author(self) -> str:
        return self.id.split("/")[0]

    @cached_property
    def by_path(self) -> dict[str, RepoFile]:
        return {f.path: f for f in self.files}

    @cached_property
    def library_name(self) -> str | None:
        return infer_library(self.card or {}, list(self.by_path)) if self.type == MODEL else None

    @cached_property
    def tags(self) -> list[str]:
        return derive_tags(self.type, self.card or {}, self.library_name, list(self.by_path))

    @cached_property
    def safetensors(self) -> dict[str, Any] | None:
        """Parameter counts per dtype over the repo's safetensors files, as the hub reports them."""
        counts: dict[str, int] = {}
        for f in self.files:
            for dtype, n in (f.digest.parameters or {}).items():
                counts[dtype] = counts.get(dtype, 0) + n
        return {"parameters": counts, "total": sum(counts.values())} if counts else None

    def directories(self) -> list[str]:
        """Every folder that holds a file, e.g. ``a`` and ``a/b`` for ``a/b/c.txt``."""
        dirs = {f.path.rsplit("/", i)[0] for f in self.files for i in range(1, f.path.count("/") + 1)}
        return sorted(dirs)


def iso_utc(ns: int) -> str:
    """The hub's timestamp format: ``2024-05-01T12:00:00.000Z``."""
    stamp = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _digest_file(path: str, size: int) -> FileDigest:
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())  # noqa: S324 (git's object id, not security)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha256.update(chunk)
            git.update(chunk)
    params = _safetensors_parameters(path) if path.endswith(".safetensors") else None
    return FileDigest(sha256=sha256.hexdigest(), blob_id=git.hexdigest(), parameters=params)


def _safetensors_parameters(path: str) -> dict[str, int] | None:
    """Element counts per dtype from a safetensors header; None if the file is not valid safetensors."""
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > _MAX_SAFETENSORS_HEADER:
                return None
            header = json.loads(fh.read(n))
        counts: dict[str, int] = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for dim in info["shape"]:
                numel *= int(dim)
            counts[info["dtype"]] = counts.get(info["dtype"], 0) + numel
        return counts
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error):
        return None


def _created_at(value: Any, default_ns: int) -> str:
    if value is not None:
        try:
            stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            return iso_utc(int(stamp.timestamp() * 1e9))
        except ValueError:
            log.warning("ignoring invalid createdAt %r in %s", value, HUB_META_FILE)
    return iso_utc(default_ns)


class RepoIndex:
    """Thread-safe view of a folder of repos, with content hashes cached across requests."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._lock = threading.Lock()
        # Cache values end with a "racy" flag: True while the entry may miss a same-size edit.
        self._digests: dict[str, tuple[int, int, FileDigest, bool]] = {}
        self._repos: dict[str, tuple[tuple, Repo, bool]] = {}

    # -- public -------------------------------------------------------------------------------
    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo as it is on disk now, or None if there is no such repo."""
        folder = self.folder(repo_type, repo_id)
        if folder is None or not folder.is_dir():
            return None
        return self._load(repo_type, repo_id, str(folder))

    def get_at(self, repo_type: str, repo_id: str, sha: str) -> Repo | None:
        """The repo as it was at commit ``sha``, if a commit through the write API kept that version."""
        folder = self.history_folder(repo_type, repo_id, sha)
        if folder is None or not folder.is_dir():
            return None
        repo = self._load(repo_type, repo_id, str(folder))
        return repo if repo.sha == sha else None  # kept files changed since: that version is gone

    def history_folder(self, repo_type: str, repo_id: str, sha: str) -> Path | None:
        """Where an earlier version of a repo is kept (``.history/`` in the root: hidden, never listed)."""
        parts = split_repo_id(repo_id)
        if parts is None or not _SHA.fullmatch(sha):
            return None
        return self.root.joinpath(HISTORY_DIR, repo_type, *parts, sha)

    def folder(self, repo_type: str, repo_id: str) -> Path | None:
        """Where the repo lives (or would), symlinks resolved; None for an invalid id or a place outside the root."""
        parts = split_repo_id(repo_id)
        if parts is None or (repo_type == MODEL and parts[0] == DATASETS_DIR):
            return None
        base = self.root / DATASETS_DIR if repo_type == DATASET else self.root
        folder = base.joinpath(*parts).resolve()
        return folder if folder != self.root and folder.is_relative_to(self.root) else None

    def renamed(self, repo_type: str, repo_id: str) -> str | None:
        """The id of the repo whose ``.hub.json`` says it was formerly ``repo_id``, if any."""
        return next((r.id for r in self.list(repo_type) if repo_id in r.meta.get("formerly", ())), None)

    def list(self, repo_type: str) -> list[Repo]:
        """Every repo of a type as it is on disk now, sorted by id."""
        base = str(self.root / DATASETS_DIR) if repo_type == DATASET else str(self.root)
        repos = []
        for org, org_dir in self._subdirs(base):
            if repo_type == MODEL and org == DATASETS_DIR:
                continue
            for name, folder in self._subdirs(org_dir):
                repos.append(self._load(repo_type, f"{org}/{name}", folder))
        repos.sort(key=lambda r: r.id)
        return repos

    # -- scanning -----------------------------------------------------------------------------
    def _subdirs(self, parent: str) -> list[tuple[str, str]]:
        """Folders under ``parent`` that can be an org or repo, resolved and kept inside the root."""
        try:
            entries = list(os.scandir(parent))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for e in entries:
            if not is_valid_id_part(e.name) or not e.is_dir():
                continue
            path = e.path
            if e.is_symlink():
                path = os.path.realpath(path)
                if not path.startswith(str(self.root) + os.sep):
                    continue
            out.append((e.name, path))
        return out

    def _walk(self, folder: str) -> tuple[list[tuple[str, str, os.stat_result]], os.stat_result | None]:
        """(relative path, real path, stat) of every servable file, and the stat of ``.hub.json``.

        Symlinks are followed only to files inside the repo."""
        found = []
        meta = None
        stack = [("", folder)]
        while stack:
            prefix, directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for e in entries:
                rel = prefix + e.name
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:  # not nameable in a URL or JSON: invisible
                    continue
                if rel == HUB_META_FILE:  # metadata, never a repo file
                    meta = None if e.is_symlink() else e.stat(follow_symlinks=False)
                elif e.is_symlink():
                    target = os.path.realpath(e.path)
                    if target.startswith(folder + os.sep) and os.path.isfile(target):
                        found.append((rel, target, os.stat(target)))
                elif e.is_dir(follow_symlinks=False):
                    if not (prefix == "" and e.name in SKIPPED_DIRS):
                        stack.append((rel + "/", e.path))
                elif e.is_file(follow_symlinks=False):
                    found.append((rel, e.path, e.stat(follow_symlinks=False)))
        found.sort()
        return found, meta

    def _load(self, repo_type: str, repo_id: str, folder: str) -> Repo:
        files, meta_stat = self._walk(folder)
        meta_key = (meta_stat.st_size, meta_stat.st_mtime_ns) if meta_stat else ()
        fingerprint = (repo_type, repo_id, meta_key, tuple((r, a, s.st_size, s.st_mtime_ns) for r, a, s in files))
        cached = self._repos.get(folder)
        if cached is not None and cached[0] == fingerprint and not cached[2]:
            return cached[1]
        started = time.time_ns()
        meta_path = os.path.join(folder, HUB_META_FILE) if meta_stat else None
        repo = self._build(repo_type, repo_id, folder, files, meta_path)
        newest = max([s.st_mtime_ns for _, _, s in files] + ([meta_stat.st_mtime_ns] if meta_stat else []), default=0)
        with self._lock:
            self._repos[folder] = (fingerprint, repo, newest > started - RACY_NS)
        return repo

    def _digest(self, abspath: str, st: os.stat_result) -> FileDigest | None:
        """The file's digest, from the cache when its size and mtime say it is unchanged; None if unreadable."""
        cached = self._digests.get(abspath)
        if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns) and not cached[3]:
            return cached[2]
        started = time.time_ns()
        try:
            digest = _digest_file(abspath, st.st_size)
        except OSError:  # vanished since the walk, or not readable: not servable either
            return None
        with self._lock:
            racy = st.st_mtime_ns > started - RACY_NS
            self._digests[abspath] = (st.st_size, st.st_mtime_ns, digest, racy)
        return digest

    def _build(self, repo_type: str, repo_id: str, folder: str, files: list, meta_path: str | None) -> Repo:
        digests = [(rel, abspath, st, self._digest(abspath, st)) for rel, abspath, st in files]
        repo_files = tuple(
            RepoFile(rel, abspath, st.st_size, st.st_mtime_ns, digest) for rel, abspath, st, digest in digests if digest
        )
        commit = hashlib.sha1()  # noqa: S324 (a content id shaped like a git commit sha)
        for f in repo_files:
            commit.update(f"{f.path}\0{f.digest.sha256}\n".encode())
        mtimes = [f.mtime_ns for f in repo_files] or [os.stat(folder).st_mtime_ns]
        meta = self._read_meta(meta_path) if meta_path else {}
        card = None
        readme = next((f for f in repo_files if f.path == "README.md"), None)
        if readme is not None:
            with open(readme.abspath, encoding="utf-8", errors="replace") as fh:
                card = parse_front_matter(fh.read(_MAX_CARD_CHARS))
        return Repo(
            type=repo_type,
            id=repo_id,
            files=repo_files,
            sha=commit.hexdigest(),
            last_modified=iso_utc(max(mtimes)),
            created_at=_created_at(meta.get("createdAt"), min(mtimes)),
            card=card,
            meta=meta,
        )

    @staticmethod
    def _read_meta(path: str) -> dict[str, Any]:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable %s: %s", path, err)
            return {}
        if not isinstance(data, dict):
            log.warning("ignoring %s: not a JSON object", path)
            return {}
        meta = {}
        for key, valid in _META_KEYS.items():
            if key in data:
                if valid(data[key]):
                    meta[key] = data[key]
                else:
                    log.warning("ignoring invalid %s=%r in %s", key, data[key], path)
        return meta
