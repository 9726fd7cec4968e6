"""The hub API over a folder of repos, as a Starlette app: read-only unless writes are asked for.

Endpoints (models and datasets alike): ``GET /api/{models,datasets}`` (search, author, filter, sort,
direction, limit, expand, full, cardData; cursor pagination with ``Link: <...>; rel="next"``),
``GET /api/{type}s/{id}[/revision/{rev}]``, ``GET /api/{type}s/{id}/tree/{rev}[/{path}]``, and
``HEAD``/``GET`` ``[/datasets]/{id}/resolve/{rev}/{path}``. Errors carry the ``X-Error-Code`` that makes
``huggingface_hub`` raise RepositoryNotFoundError, RevisionNotFoundError or EntryNotFoundError. With
``writable=True`` the POST endpoints of ``writes.py`` (create a repo, commit) work too; otherwise they
answer 403.

One catch-all route per method dispatches on the raw path (see ``routes.py``); Starlette runs the reads in
a worker thread because scanning and hashing block, and writes hand their work to one.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlencode

import anyio
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zoo.localhub import views
from zoo.localhub.counters import RequestLog
from zoo.localhub.errors import ApiError
from zoo.localhub.faults import FaultInjector, Faults
from zoo.localhub.files import RangeNotSatisfiable, RepoFileResponse, file_headers, parse_range
from zoo.localhub.paths import safe_relpath
from zoo.localhub.repos import Repo, RepoIndex
from zoo.localhub.routes import FILE, INFO, LIST, TREE, Target, parse_target
from zoo.localhub.writes import RepoWriter, handle

DEFAULT_PAGE_SIZE = 1000
_TRUE = {"1", "true", "yes"}


class LocalHub:
    """State of one server: the repo index, the current faults, the request log and, only when writes are
    allowed, the writer.

    ``faults`` may be reassigned while serving (e.g. a test turns errors on after a first crawl);
    this restarts the fault RNG from the new seed.
    """

    def __init__(
        self, root: Path, faults: Faults | None = None, page_size: int = DEFAULT_PAGE_SIZE, *, writable: bool = False,
        write_token: str | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        if write_token is not None and not writable:
            raise ValueError("write_token is only used by a writable hub")
        self.index = RepoIndex(root)
        self.writer = RepoWriter(self.index, write_token) if writable else None
        self.requests = RequestLog()
        self.page_size = page_size
        self.faults = faults or Faults()
        self._listings: OrderedDict[str, list[Repo]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self.injector = FaultInjector(faults)

    def remember_listing(self, repos: list[Repo]) -> str:
        """Keep a filtered, sorted listing so its next pages are served from the same snapshot.

        Keys are random, so a cursor from before a restart can never name another query's listing."""
        key = secrets.token_hex(8)
        with self._lock:
            self._listings[key] = repos
            while len(self._listings) > 16:
                self._listings.popitem(last=False)
            return key

    def recall_listing(self, key: str) -> list[Repo] | None:
        with self._lock:
            return self._listings.get(key)


def create_app(
    root: Path, faults: Faults | None = None, *, page_size: int = DEFAULT_PAGE_SIZE, writable: bool = False,
    write_token: str | None = None,
) -> Starlette:
    """The ASGI app serving ``root``; its state (``app.state.hub``) is a :class:`LocalHub`.

    ``writable`` lets clients with a bearer token create repos and commit; ``write_token`` (optional) is then
    the only token accepted."""
    hub = LocalHub(Path(root), faults, page_size, writable=writable, write_token=write_token)

    def endpoint(request: Request) -> Response:
        try:
            return _dispatch(hub, request)
        except ApiError as err:
            return err.response()

    async def write_endpoint(request: Request) -> Response:
        try:
            return await handle(hub.writer, request, parse_target(_raw_path(request.scope)))
        except ApiError as err:
            return err.response()

    app = Starlette(
        routes=[
            Route("/{path:path}", endpoint, methods=["GET", "HEAD"]),
            Route("/{path:path}", write_endpoint, methods=["POST"]),
        ],
        middleware=[Middleware(HubMiddleware, hub=hub)],
    )
    app.state.hub = hub
    return app


class HubMiddleware:
    """Counts every request, then applies the configured faults before the real answer."""

    def __init__(self, app: ASGIApp, hub: LocalHub) -> None:
        self.app, self.hub = app, hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = _raw_path(scope)
        target = parse_target(raw_path)
        kind = f"file-{scope['method'].lower()}" if target.endpoint == FILE else target.endpoint
        counted = False

        async def send_counted(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start":  # counted before the client can see an answer
                self.hub.requests.record(kind, scope["method"], raw_path, message["status"])
                counted = True
            await send(message)

        try:
            injector = self.hub.injector
            if injector.latency_s:
                await anyio.sleep(injector.latency_s)
            fault = _fault_response(injector)
            await (fault or self.app)(scope, receive, send_counted)
        finally:
            if not counted:  # the app failed before answering; Starlette turns that into a 500
                self.hub.requests.record(kind, scope["method"], raw_path, 500)


def _fault_response(injector: FaultInjector) -> Response | None:
    """A 429 (with ``Retry-After`` and the ``RateLimit`` header the client reads) or a 5xx, if one is due."""
    retry_after = injector.throttle()
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after), "RateLimit": f'"api";r=0;t={retry_after}'}
        return JSONResponse({"error": "rate limited (local hub fault injection)"}, status_code=429, headers=headers)
    status = injector.server_error()
    if status is not None:
        return JSONResponse({"error": "server error (local hub fault injection)"}, status_code=status)
    return None


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else scope["path"]


def _dispatch(hub: LocalHub, request: Request) -> Response:
    target = parse_target(_raw_path(request.scope))
    params = request.query_params
    if target.endpoint == LIST:
        return _list(hub, request, target.repo_type)
    if target.endpoint == INFO:
        repo = _repo_at(hub, target)
        return JSONResponse(views.info_json(repo, _expand(params, target.repo_type)))
    if target.endpoint == TREE:
        return _tree(hub, request, target)
    if target.endpoint == FILE:
        return _file(hub, request, target)
    raise ApiError(404, "Not Found")


def _repo_at(hub: LocalHub, target: Target) -> Repo:
    """The repo at the target's revision (``main``, its current sha, or an earlier commit made through the
    write API), or a typed 404."""
    repo = hub.index.get(target.repo_type, target.repo_id)
    if repo is None:
        raise ApiError(404, f"Repository {target.repo_id!r} not found", "RepoNotFound")
    if target.revision in (None, "main", repo.sha):
        return repo
    earlier = hub.index.get_at(target.repo_type, target.repo_id, target.revision)
    if earlier is None:
        raise ApiError(404, f"Invalid rev id: {target.revision}", "RevisionNotFound")
    return earlier


# -- listings -------------------------------------------------------------------------------------
def _list(hub: LocalHub, request: Request, repo_type: str) -> Response:
    params = request.query_params
    expand = _expand(params, repo_type)
    limit = _int_param(params, "limit", minimum=0)
    listing_id, offset = _decode_cursor(params.get("cursor"))
    repos = hub.recall_listing(listing_id) if listing_id else None
    if repos is None:
        repos = _select(hub, params, repo_type)
        listing_id = hub.remember_listing(repos)
    end = len(repos) if limit is None else min(len(repos), limit)
    stop = min(end, offset + hub.page_size)
    page = [
        views.list_item_json(r, expand=expand, full=_flag(params, "full"), card_data=_flag(params, "cardData"))
        for r in repos[offset:stop]
    ]
    headers = {}
    if stop < end:
        headers["Link"] = f'<{_next_url(request, _encode_cursor(listing_id, stop))}>; rel="next"'
    return JSONResponse(page, headers=headers)


def _select(hub: LocalHub, params: QueryParams, repo_type: str) -> list[Repo]:
    sort = params.get("sort")
    if sort is not None and sort not in views.SORT_KEYS:
        raise ApiError(400, f"Invalid sort key {sort!r}; expected one of {sorted(views.SORT_KEYS)}")
    key = views.SORT_KEYS.get(sort) if sort else None
    direction = params.get("direction")
    if direction not in (None, "1", "-1"):
        raise ApiError(400, "direction must be 1 or -1")
    # Like the hub: metrics and dates sort descending unless direction=1; ids ascending unless -1.
    descending = direction == "-1" if direction is not None else key not in (None, "id")
    gated = params.get("gated")
    repos = views.filter_repos(
        hub.index.list(repo_type),
        search=_multi(params, "search"),
        author=params.get("author"),
        tags=_multi(params, "filter"),
        pipeline_tag=params.get("pipeline_tag"),
        gated=None if gated is None else gated.lower() in _TRUE,
    )
    return views.sort_repos(repos, key, descending)


def _encode_cursor(listing_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{listing_id}:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str, int]:
    """(listing id, offset); a listing that is no longer remembered is recomputed from the same query."""
    if not cursor:
        return "", 0
    try:
        listing_id, offset = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        return listing_id, max(0, int(offset))
    except ValueError as err:
        raise ApiError(400, "Invalid cursor") from err


def _next_url(request: Request, cursor: str) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    items.append(("cursor", cursor))
    url = request.url
    return f"{url.scheme}://{url.netloc}{_raw_path(request.scope)}?{urlencode(items)}"


# -- trees and files ------------------------------------------------------------------------------
def _tree(hub: LocalHub, request: Request, target: Target) -> Response:
    repo = _repo_at(hub, target)
    folder = ""
    if target.path:
        folder = safe_relpath(target.path.rstrip("/")) or ""
        if not folder:
            raise ApiError(400, f"Invalid path {target.path!r}")
    params = request.query_params
    entries = views.tree_json(repo, folder, recursive=_flag(params, "recursive"), expand=_flag(params, "expand"))
    if entries is None:
        raise ApiError(404, f"Folder {folder!r} not found in {repo.id}", "EntryNotFound")
    _, offset = _decode_cursor(params.get("cursor"))
    stop = offset + hub.page_size
    headers = {}
    if stop < len(entries):
        headers["Link"] = f'<{_next_url(request, _encode_cursor("", stop))}>; rel="next"'
    return JSONResponse(entries[offset:stop], headers=headers)


def _file(hub: LocalHub, request: Request, target: Target) -> Response:
    path = safe_relpath(target.path)
    if path is None:
        raise ApiError(400, f"Invalid file path {target.path!r}")
    repo = _repo_at(hub, target)
    rf = repo.by_path.get(path)
    if rf is None:
        raise ApiError(404, f"Entry {path!r} not found in {repo.id}", "EntryNotFound", {"X-Repo-Commit": repo.sha})
    try:
        byte_range = parse_range(request.headers.get("range"), rf.size)
    except RangeNotSatisfiable as err:
        headers = {**file_headers(repo, rf), "Content-Range": f"bytes */{rf.size}"}
        raise ApiError(416, "Requested range not satisfiable", headers=headers) from err
    head = request.method == "HEAD"
    length = (byte_range[1] - byte_range[0]) if byte_range else rf.size
    truncate_at = None if head else hub.injector.truncate(length)
    return RepoFileResponse(repo, rf, byte_range, head=head, truncate_at=truncate_at)


# -- query parameters -----------------------------------------------------------------------------
def _multi(params: QueryParams, name: str) -> list[str]:
    """A repeated parameter, accepting both ``name=`` and ``name[]=`` spellings."""
    return params.getlist(name) + params.getlist(f"{name}[]")


def _flag(params: QueryParams, name: str) -> bool:
    return (params.get(name) or "").lower() in _TRUE


def _expand(params: QueryParams, repo_type: str) -> list[str]:
    fields = [f for value in _multi(params, "expand") for f in value.split(",") if f]
    unknown = sorted(set(fields) - views.EXPANDABLE[repo_type])
    if unknown:
        raise ApiError(400, f"Invalid expand values {unknown} for {repo_type}s")
    return fields


def _int_param(params: QueryParams, name: str, minimum: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as err:
        raise ApiError(400, f"{name} must be an integer") from err
    if number < minimum:
        raise ApiError(400, f"{name} must be >= {minimum}")
    return number
