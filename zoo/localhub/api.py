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
import random
import secrets
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

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
from zoo.localhub.realism import (
    ALWAYS_READABLE,
    ANONYMOUS,
    DISABLED_MESSAGE,
    LISTING_REFUSED_EXPAND,
    FixedWindows,
    Realism,
    bearer_token,
    bucket_of,
    is_lfs,
)
from zoo.localhub.repos import Repo, RepoFile, RepoIndex
from zoo.localhub.routes import CDN, CDN_PREFIX, FILE, INFO, LIST, TREE, Target, parse_target
from zoo.localhub.writes import RepoWriter, handle

DEFAULT_PAGE_SIZE = 1000
_TRUE = {"1", "true", "yes"}


class LocalHub:
    """State of one server: the repo index, the current faults, the request log, how realistic it is
    (``realism``, see ``realism.py``; None: a kind hub) and, only when writes are allowed, the writer.

    ``faults`` may be reassigned while serving (e.g. a test turns errors on after a first crawl);
    this restarts the fault RNG from the new seed.
    """

    def __init__(
        self, root: Path, faults: Faults | None = None, page_size: int = DEFAULT_PAGE_SIZE, *, writable: bool = False,
        write_token: str | None = None, realism: Realism | None = None,
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
        if realism is not None and write_token is not None:  # the one who may push owns what is pushed private
            realism = replace(realism, owner_tokens=realism.owner_tokens | {write_token})
        self.realism = realism
        self.windows = FixedWindows(realism) if realism else None
        self.cdn_port: int | None = None  # the CDN's own port (another origin, as on the real hub), once bound
        self._listings: OrderedDict[str, list[Repo]] = OrderedDict()
        self._pages_served = 0
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

    def trending_tick(self) -> int:
        """A new value per listing page: the real hub's trending scores move while a client pages."""
        with self._lock:
            self._pages_served += 1
            return self._pages_served


def create_app(
    root: Path, faults: Faults | None = None, *, page_size: int = DEFAULT_PAGE_SIZE, writable: bool = False,
    write_token: str | None = None, realism: Realism | None = None,
) -> Starlette:
    """The ASGI app serving ``root``; its state (``app.state.hub``) is a :class:`LocalHub`.

    ``writable`` lets clients with a bearer token create repos and commit; ``write_token`` (optional) is then
    the only token accepted. ``realism`` makes it as strict as the real hub."""
    hub = LocalHub(Path(root), faults, page_size, writable=writable, write_token=write_token, realism=realism)

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
    """Counts every request, then applies the configured faults and rate limits before the real answer."""

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

        allowance = None
        if self.hub.windows is not None and (bucket := bucket_of(target.endpoint)) is not None:
            allowance = self.hub.windows.take(bearer_token(_header(scope, b"authorization")), bucket)

        async def send_counted(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start":  # counted before the client can see an answer
                self.hub.requests.record(kind, scope["method"], raw_path, message["status"])
                counted = True
                if allowance is not None:
                    extra = [(k.lower().encode(), v.encode()) for k, v in allowance.headers().items()]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            injector = self.hub.injector
            if injector.latency_s:
                await anyio.sleep(injector.latency_s)
            fault = _fault_response(injector)
            if fault is None and allowance is not None and not allowance.allowed:
                fault = JSONResponse({"error": "You have exceeded our rate limit."}, status_code=429)
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


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == name), None)


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else scope["path"]


def _dispatch(hub: LocalHub, request: Request) -> Response:
    target = parse_target(_raw_path(request.scope))
    params = request.query_params
    if target.endpoint == LIST:
        return _list(hub, request, target.repo_type)
    if target.endpoint == INFO:
        repo = _repo_at(hub, target, request)
        return JSONResponse(views.info_json(repo, _expand(params, target.repo_type)))
    if target.endpoint == TREE:
        return _tree(hub, request, target)
    if target.endpoint == FILE:
        return _file(hub, request, target)
    if target.endpoint == CDN and hub.realism is not None:
        return _cdn_file(hub, request, target)
    raise ApiError(404, "Not Found")


def _repo_at(hub: LocalHub, target: Target, request: Request) -> Repo:
    """The repo at the target's revision (``main``, its current sha, or an earlier commit made through the
    write API), or a typed error; a realistic hub redirects renamed repos and tells anonymous clients 401."""
    repo = hub.index.get(target.repo_type, target.repo_id)
    token = bearer_token(request.headers.get("authorization"))
    if repo is None or (hub.realism is not None and hub.realism.hides(repo.meta, token)):
        if hub.realism is None:
            raise ApiError(404, f"Repository {target.repo_id!r} not found", "RepoNotFound")
        new_id = hub.index.renamed(target.repo_type, target.repo_id) if repo is None else None
        if new_id is not None:
            location = _renamed_url(request, target.repo_id, new_id)
            raise ApiError(307, f"Repository moved to {new_id}", headers={"Location": location})
        # A private repo answers as a missing one: nobody but its owner learns that it exists.
        raise ApiError(401 if token == ANONYMOUS else 404, f"Repository {target.repo_id!r} not found", "RepoNotFound")
    if hub.realism is not None and repo.meta.get("disabled"):
        status = 451 if repo.meta["disabled"] == "legal" else 403
        raise ApiError(status, DISABLED_MESSAGE, headers={"X-Error-Message": DISABLED_MESSAGE})
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
    if hub.realism is not None:
        return _list_as_the_hub(hub, request, repo_type, expand, limit)
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


def _list_as_the_hub(
    hub: LocalHub, request: Request, repo_type: str, expand: list[str], limit: int | None
) -> Response:
    """A realistic listing: ``limit`` is the page size, every page is selected and sorted again, the
    default (trending) order moves from one page to the next, and private repos show to their owner only."""
    params = request.query_params
    refused = sorted(LISTING_REFUSED_EXPAND & set(expand))
    if refused:
        raise ApiError(400, f"Invalid expand values {refused} when listing {repo_type}s")
    _, offset = _decode_cursor(params.get("cursor"))
    token = bearer_token(request.headers.get("authorization"))
    repos = [r for r in _select(hub, params, repo_type) if not hub.realism.hides(r.meta, token)]
    if params.get("sort") in (None, "trendingScore", "trending_score"):
        random.Random(hub.trending_tick()).shuffle(repos)
    stop = offset + min(limit or hub.page_size, hub.page_size)
    page = [
        views.list_item_json(r, expand=expand, full=_flag(params, "full"), card_data=_flag(params, "cardData"))
        for r in repos[offset:stop]
    ]
    headers = {}
    if stop < len(repos):
        headers["Link"] = f'<{_next_url(request, _encode_cursor("", stop))}>; rel="next"'
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
def _renamed_url(request: Request, old_id: str, new_id: str) -> str:
    """The request's URL with the old repo id's two path segments replaced by the new id."""
    segments = _raw_path(request.scope).split("/")
    old = old_id.split("/")
    at = next(i for i in range(len(segments) - 1) if [unquote(s) for s in segments[i : i + 2]] == old)
    segments[at : at + 2] = [quote(part, safe="") for part in new_id.split("/")]
    query = f"?{request.url.query}" if request.url.query else ""
    return "/".join(segments) + query


def _tree(hub: LocalHub, request: Request, target: Target) -> Response:
    repo = _repo_at(hub, target, request)
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
    repo = _repo_at(hub, target, request)
    rf = repo.by_path.get(path)
    if rf is None:
        raise ApiError(404, f"Entry {path!r} not found in {repo.id}", "EntryNotFound", {"X-Repo-Commit": repo.sha})
    if hub.realism is not None:
        _check_gate(hub.realism, repo, path, request)
        if is_lfs(rf):
            return _lfs_redirect(hub, request, repo, rf)
    return _serve(hub, request, repo, path, from_cdn=False)


def _check_gate(realism: Realism, repo: Repo, path: str, request: Request) -> None:
    """A gated repo's files (its card aside): 401 without a token, 403 for a token that did not accept the gate."""
    if not repo.meta.get("gated") or path in ALWAYS_READABLE:
        return
    token = bearer_token(request.headers.get("authorization"))
    if token in realism.granted_tokens:
        return
    status = 401 if token == ANONYMOUS else 403
    raise ApiError(status, f"Access to {repo.id} is restricted: accept its conditions first", "GatedRepo")


def _lfs_redirect(hub: LocalHub, request: Request, repo: Repo, rf: RepoFile) -> Response:
    """The real hub's answer for an LFS file: 302 to the CDN (another origin, so clients drop their token),
    with the content hash and size in ``X-Linked-*``."""
    location = f"{CDN_PREFIX}/{repo.type}/{repo.id}/{repo.sha}/{quote(rf.path)}"
    if hub.cdn_port is not None:
        host = request.url.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        location = f"{request.url.scheme}://{host}:{hub.cdn_port}{location}"
    headers = {
        "Location": location,
        "X-Repo-Commit": repo.sha,
        "X-Linked-Etag": f'"{rf.digest.sha256}"',
        "X-Linked-Size": str(rf.size),
    }
    return Response(status_code=302, headers=headers)


def _cdn_file(hub: LocalHub, request: Request, target: Target) -> Response:
    """The CDN's answer: the file's bytes (ranges honoured), without any repo header."""
    path = safe_relpath(target.path)
    repo = hub.index.get(target.repo_type, target.repo_id)
    if repo is not None and target.revision != repo.sha:
        repo = hub.index.get_at(target.repo_type, target.repo_id, target.revision or "")
    if path is None or repo is None or path not in repo.by_path:
        raise ApiError(404, "Not Found")
    return _serve(hub, request, repo, path, from_cdn=True)


def _serve(hub: LocalHub, request: Request, repo: Repo, path: str, *, from_cdn: bool) -> Response:
    rf = repo.by_path[path]
    try:
        byte_range = parse_range(request.headers.get("range"), rf.size)
    except RangeNotSatisfiable as err:
        headers = {**file_headers(repo, rf), "Content-Range": f"bytes */{rf.size}"}
        raise ApiError(416, "Requested range not satisfiable", headers=headers) from err
    head = request.method == "HEAD"
    length = (byte_range[1] - byte_range[0]) if byte_range else rf.size
    truncate_at = None if head else hub.injector.truncate(length)
    corrupt_at = None if head or byte_range else hub.injector.corrupt(length)
    return RepoFileResponse(
        repo, rf, byte_range, head=head, truncate_at=truncate_at, corrupt_at=corrupt_at, from_cdn=from_cdn
    )


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
