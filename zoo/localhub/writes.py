"""The hub's write API, off unless asked for: enough of it for ``huggingface_hub`` to push to a local hub.

``HfApi.create_repo``, ``create_commit`` and ``upload_folder`` call, in this order, ``POST /api/repos/create``,
``POST /api/validate-yaml`` (when a README.md is uploaded), ``POST /api/{type}s/{id}/preupload/{rev}`` and
``POST /api/{type}s/{id}/commit/{rev}`` (NDJSON: a header, then ``file`` / ``deletedFile`` / ``deletedFolder``
lines). Preupload answers ``uploadMode: "regular"`` for every file, so contents arrive inline (base64) in the
commit and no LFS or xet storage is needed; it also returns each file's current git oid, which lets the
client drop unchanged files (and skip a commit that would change nothing).

Every write needs ``Authorization: Bearer <token>``. Paths from the client follow ``paths.safe_relpath`` and
may not name hidden files (``.hub.json``, ``.git/`` are the served folder's own). A commit is built in a
staging copy of the repo (unchanged files hard-linked) and swapped in with two renames, so a commit that
fails leaves the repo as it was (a read landing between the two renames sees no repo: a retry finds the new
one). The previous version leaves the staging folder only once the swap (or the way back) has succeeded: if
both renames fail, or the process dies between them, it stays there and the next writer started on the
folder puts it back. One lock serialises all writes, across processes too (``flock`` on a file in
the served folder), so two ``zoo hub serve --writable`` on one folder cannot interleave their commits. The
commit sha is the repo's content hash (``repos.py``), so committing the same content twice gives the same
sha. The version a commit replaces is kept under ``.history/`` in the served folder, moved there right after
the swap, so a pin to an earlier commit made here keeps resolving. Its unchanged files are hard links shared
with the newer version (commits never edit a file in place, they replace it); editing a repo's files in
place on disk therefore changes the kept version too, which then no longer answers to its sha (refused,
never served wrong) until that content is committed again. Kept versions are never pruned.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from zoo.localhub.cards import parse_front_matter
from zoo.localhub.errors import ApiError
from zoo.localhub.paths import HUB_META_FILE, safe_relpath
from zoo.localhub.repos import DATASET, DATASETS_DIR, MODEL, Repo, RepoIndex
from zoo.localhub.routes import CREATE, PREUPLOAD, VALIDATE_YAML, WRITES, Target

BRANCH = "main"
READ_ONLY = "this local hub is read-only; serve it with writes on (zoo hub serve --writable) to push to it"
# The client turns a 401 into "repository not found" unless the answer carries this exact message.
_BAD_CREDENTIALS = {"X-Error-Message": "Invalid credentials in Authorization header"}
_MAX_NAME_BYTES = 255  # one path segment, as most filesystems allow
MAX_BODY_BYTES = 512 << 20  # one request; file contents come inline, base64
LOCK_FILE = ".hub-write.lock"  # in the served folder: hidden, never listed as a repo
_STAGING_MARK = ".commit-"  # staging folders are ".<repo name>.commit-<random>" beside the repo
_OLD = "old"  # inside a staging folder: the version being replaced

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operation:
    """One line of a commit: ``kind`` is ``file``, ``deletedFile`` or ``deletedFolder``."""

    kind: str
    path: str
    content: bytes = b""


class RepoWriter:
    """Creates repos and applies commits under the index's root, one write at a time.

    With ``token`` None any non-empty bearer token may write (a hub for tests and one machine), else only it.
    """

    def __init__(self, index: RepoIndex, token: str | None = None) -> None:
        self.index, self._token = index, token
        self._lock = threading.Lock()
        with self._locked():
            recover_interrupted_commits(index.root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then every process writing to the folder, one at a time."""
        with self._lock, open(self.index.root / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield

    def authorise(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "writes need an 'Authorization: Bearer <token>' header", headers=_BAD_CREDENTIALS)
        if self._token is not None and not secrets.compare_digest(token.encode(), self._token.encode()):
            raise ApiError(401, "this token may not write to this hub", headers=_BAD_CREDENTIALS)

    def folder(self, repo_type: str, repo_id: str) -> Path:
        """Where the repo lives (or will): a valid ``org/name``, resolved, inside the served root."""
        folder = self.index.folder(repo_type, repo_id)
        if folder is None:
            raise ApiError(400, f"invalid repo id {repo_id!r}: expected org/name made of letters, digits, '-_.', "
                                "inside the served folder")
        return folder

    def create(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create an empty repo; False if it exists. ``private`` is recorded in ``.hub.json`` (a realistic
        hub then hides the repo from every token but the owner's and the write token)."""
        folder = self.folder(repo_type, repo_id)
        with self._locked():
            if folder.exists():
                return False
            folder.mkdir(parents=True)
            if private:
                (folder / HUB_META_FILE).write_text(json.dumps({"private": True}))
            return True

    def head(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.index.get(repo_type, repo_id)
        if repo is None:
            raise ApiError(404, f"Repository {repo_id!r} not found; create it first", "RepoNotFound")
        return repo

    def commit(self, repo_type: str, repo_id: str, operations: list[Operation], parent: str | None) -> str:
        """Apply ``operations`` in order, all or none; returns the new commit sha."""
        folder = self.folder(repo_type, repo_id)
        with self._locked():
            before = self.head(repo_type, repo_id).sha
            if parent not in (None, before):
                raise ApiError(412, f"parentCommit {parent} is not the head of {BRANCH}; pull and commit again")
            # Hidden, so never listed; beside the repo, so the renames stay on one filesystem.
            staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_STAGING_MARK}", dir=folder.parent))
            old, swapped = staging / _OLD, False
            try:
                slot = self._history_slot(repo_type, repo_id, before, staging)
                draft = staging / "repo"
                shutil.copytree(folder, draft, symlinks=True, copy_function=_link_or_copy)
                for op in operations:
                    _apply(draft, op)
                os.rename(folder, old)
                try:
                    os.rename(draft, folder)
                except OSError:
                    os.rename(old, folder)  # if this fails too, ``old`` is the only copy: kept below
                    raise
                swapped = True
                if slot is not None:  # at once, so a pin to the replaced commit never stops resolving
                    _keep(old, slot, repo_id)
            except OSError as err:
                raise ApiError(500, f"the commit failed and was not applied: {err.strerror or err}") from err
            finally:
                if swapped or not old.exists():
                    shutil.rmtree(staging, ignore_errors=True)
                else:
                    log.error("commit to %s failed midway; its previous version is kept in %s and is put back "
                              "when a writable hub next starts on this folder", repo_id, old)
            return self.head(repo_type, repo_id).sha

    def _history_slot(self, repo_type: str, repo_id: str, sha: str, staging: Path) -> Path | None:
        """Where the version about to be replaced goes, ready before the swap; None if it is kept already.

        A kept copy that no longer matches its sha (its files, shared with the repo as hard links, were edited
        on disk) is replaced by this genuine one."""
        target = self.index.history_folder(repo_type, repo_id, sha)
        if target is None:
            return None
        if target.exists():
            if self.index.get_at(repo_type, repo_id, sha) is not None:
                return None
            os.rename(target, staging / "stale")  # deleted with the staging folder
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


def _keep(version: Path, slot: Path, repo_id: str) -> None:
    """Best effort: the commit is done whatever happens here; a failure only loses the pin."""
    try:
        os.rename(version, slot)
    except OSError as err:
        log.warning("could not keep the replaced version of %s in %s (%s): pins to it will not resolve",
                    repo_id, slot, err)


def recover_interrupted_commits(root: Path) -> list[Path]:
    """Put back every repo whose commit stopped between its two renames (the repo folder is missing and its
    previous version waits in a staging folder), and remove what other commits left behind. Returns the repo
    folders put back. Call with the write lock held."""
    orgs = [d for base in (root, root / DATASETS_DIR) if base.is_dir() for d in base.iterdir()
            if d.is_dir() and not d.name.startswith(".")]
    return [folder for org in orgs for staging in sorted(org.glob(f".*{_STAGING_MARK}*"))
            if (folder := _recover(staging)) is not None]


def _recover(staging: Path) -> Path | None:
    """Rename the previous version back if its repo folder is missing; drop the staging folder either way."""
    folder, old = staging.parent / staging.name[1:].rsplit(_STAGING_MARK, 1)[0], staging / _OLD
    restored = None
    if old.is_dir() and not folder.exists():
        os.rename(old, folder)
        restored = folder
        log.warning("put back %s, whose last commit had stopped midway", folder)
    shutil.rmtree(staging, ignore_errors=True)
    return restored


def _link_or_copy(src: str, dst: str) -> None:
    """Unchanged files are hard links into the previous version; writes always replace, never edit in place."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _apply(root: Path, op: Operation) -> None:
    """Apply one operation inside ``root``; no step follows a symlink, so nothing can land outside it."""
    *parents, name = op.path.split("/")
    folder = root
    for part in parents:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ApiError(400, f"{op.path!r}: {part!r} is not a folder of the repo")
        if op.kind == "file":
            folder.mkdir(exist_ok=True)
        elif not folder.is_dir():
            raise ApiError(404, f"{op.path!r}: no such folder in the repo", "EntryNotFound")
    target = folder / name
    if op.kind == "file":
        if target.is_dir() and not target.is_symlink():
            raise ApiError(400, f"{op.path!r} is a folder of the repo")
        if target.is_symlink() or target.exists():
            target.unlink()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(op.content)
    elif op.kind == "deletedFile":
        if not (target.is_symlink() or target.is_file()):
            raise ApiError(404, f"A file with this name doesn't exist: {op.path!r}", "EntryNotFound")
        target.unlink()
    elif target.is_symlink() or not target.is_dir():
        raise ApiError(404, f"A folder with this name doesn't exist: {op.path!r}", "EntryNotFound")
    else:
        shutil.rmtree(target)
    while op.kind != "file" and folder != root and not any(folder.iterdir()):
        folder.rmdir()  # as in git, a folder lives only while it holds files
        folder = folder.parent


def _repo_path(path: Any) -> str:
    """A path the client wants to write: ``safe_relpath``'s rules, UTF-8, no hidden segment, no overlong name."""
    clean = safe_relpath(path) if isinstance(path, str) else None
    try:
        parts = clean.split("/") if clean else []
        ok = bool(parts) and all(not p.startswith(".") and len(p.encode()) <= _MAX_NAME_BYTES for p in parts)
    except UnicodeEncodeError:
        ok = False
    if not ok:
        raise ApiError(400, f"invalid path in repo {path!r}: relative, no '..', no hidden (.name) segments")
    return clean


# -- HTTP ---------------------------------------------------------------------------------------------
async def handle(writer: RepoWriter | None, request: Request, target: Target) -> Response:
    """Answer a POST: 405 if it is not a write endpoint, 403 on a read-only hub, 401 without a valid token."""
    if target.endpoint not in WRITES:
        raise ApiError(405, "Method Not Allowed", headers={"Allow": "GET, HEAD"})
    if writer is None:
        raise ApiError(403, READ_ONLY, headers={"X-Error-Message": "This local hub is read-only"})
    writer.authorise(request.headers.get("authorization"))
    if request.query_params.get("create_pr"):
        raise ApiError(400, "this hub has no pull requests; commit to main")
    body = await _read_body(request, MAX_BODY_BYTES)
    base_url = str(request.base_url).rstrip("/")
    return await anyio.to_thread.run_sync(_answer, writer, target, body, base_url)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(writer: RepoWriter, target: Target, body: bytes, base_url: str) -> Response:
    if target.endpoint == VALIDATE_YAML:
        return _validate_yaml(_json_object(body))
    if target.endpoint == CREATE:
        return _create(writer, _json_object(body), base_url)
    if target.revision != BRANCH:
        raise ApiError(400, f"this hub has one branch, {BRANCH}; cannot write to {target.revision!r}")
    if target.endpoint == PREUPLOAD:
        return _preupload(writer, target, _json_object(body))
    parent, operations = _parse_commit(body)
    sha = writer.commit(target.repo_type, target.repo_id, operations, parent)
    commit_url = f"{_repo_url(base_url, target.repo_type, target.repo_id)}/commit/{sha}"
    return JSONResponse({"success": True, "commitOid": sha, "commitUrl": commit_url, "hookOutput": ""})


def _repo_url(base_url: str, repo_type: str, repo_id: str) -> str:
    return f"{base_url}{'/datasets' if repo_type == DATASET else ''}/{repo_id}"


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the body is not JSON: {err}") from err
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object")
    return payload


def _validate_yaml(payload: dict[str, Any]) -> Response:
    """A README whose front matter opens but is not a YAML mapping is refused, as the hub refuses it."""
    content = payload.get("content")
    if not isinstance(content, str):
        raise ApiError(400, "content must be a string")
    opens = [line.strip() for line in content.lstrip("\ufeff").splitlines()[:1]] == ["---"]
    if opens and parse_front_matter(content) is None:
        errors = [{"message": "README.md: the YAML front matter is not a valid mapping"}]
        return JSONResponse({"errors": errors, "warnings": []}, status_code=400)
    return JSONResponse({"errors": [], "warnings": []})


def _create(writer: RepoWriter, payload: dict[str, Any], base_url: str) -> Response:
    name, org, repo_type = payload.get("name"), payload.get("organization"), payload.get("type") or MODEL
    if repo_type not in (MODEL, DATASET):
        raise ApiError(400, f"this hub holds model and dataset repos, not {repo_type!r}")
    if not isinstance(name, str) or not isinstance(org, str):
        raise ApiError(400, "name the repo as org/name")
    repo_id = f"{org}/{name}"
    private = payload.get("visibility") == "private" or payload.get("private") is True
    url = _repo_url(base_url, repo_type, repo_id)
    if not writer.create(repo_type, repo_id, private):
        return JSONResponse({"error": f"You already created this {repo_type} repo", "url": url}, status_code=409)
    return JSONResponse({"url": url, "name": repo_id, "id": repo_id})


def _preupload(writer: RepoWriter, target: Target, payload: dict[str, Any]) -> Response:
    files = payload.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise ApiError(400, "files must be a list of objects")
    paths = [_repo_path(f.get("path")) for f in files]
    repo = writer.head(target.repo_type, target.repo_id)
    answer = []
    for path in paths:
        entry: dict[str, Any] = {"path": path, "uploadMode": "regular", "shouldIgnore": False}
        if path in repo.by_path:
            entry["oid"] = repo.by_path[path].digest.blob_id  # git's blob id, as the client computes it
        answer.append(entry)
    return JSONResponse({"files": answer, "commitOid": repo.sha})


def _parse_commit(body: bytes) -> tuple[str | None, list[Operation]]:
    """The commit's parent (if the client pinned one) and its operations, all validated before any is applied."""
    try:
        items = [json.loads(line) for line in body.splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ApiError(400, f"the commit is not NDJSON: {err}") from err
    if not items or not all(isinstance(i, dict) and isinstance(i.get("value"), dict) for i in items):
        raise ApiError(400, 'every commit line must be {"key": ..., "value": {...}}')
    if items[0].get("key") != "header":
        raise ApiError(400, "a commit starts with its header line")
    parent = items[0]["value"].get("parentCommit")
    if parent is not None and not isinstance(parent, str):
        raise ApiError(400, "parentCommit must be a commit sha")
    return parent, [_operation(item["key"], item["value"]) for item in items[1:]]


def _operation(key: Any, value: dict[str, Any]) -> Operation:
    if key == "file":
        if value.get("encoding") != "base64" or not isinstance(value.get("content"), str):
            raise ApiError(400, "file contents must come base64-encoded")
        try:
            content = base64.b64decode(value["content"], validate=True)
        except binascii.Error as err:
            raise ApiError(400, f"file contents are not valid base64: {err}") from err
        return Operation("file", _repo_path(value.get("path")), content)
    if key == "deletedFile":
        return Operation("deletedFile", _repo_path(value.get("path")))
    if key == "deletedFolder":
        path = value.get("path")
        return Operation("deletedFolder", _repo_path(path.rstrip("/") if isinstance(path, str) else path))
    if key == "lfsFile":
        raise ApiError(400, "this hub takes no LFS or xet uploads: preupload answers 'regular', send contents inline")
    raise ApiError(400, f"unknown commit operation {key!r}")
