"""HTTP to one hub for the crawler: bounded retries, the hub's rate-limit windows paced, every request counted.

Retryable answers (408, 425, 429, 5xx), dropped connections and bodies that fail a caller's check
(a truncated page) are retried with exponential backoff and jitter. Requests are paced crawl-wide to
the quota the hub announces (``pacing.py``), so 429s are rare; one is not a failure of the request but
a request to slow down: it pauses every thread of the crawl until the window's reset (``RateLimit``'s
``t=``, else ``Retry-After``) and does not use up the attempts, only a time budget. Any other error
status is final and raised as ``HubRefused``.

Redirects are followed by hand, as ``huggingface_hub`` does: an LFS file's 302 carries the content hash
(``X-Linked-Etag``) and size that the CDN's answer lacks, and the token is not sent to another origin.
The token (``huggingface_hub.get_token()``: ``HF_TOKEN`` or ``hf auth login``) only ever goes into
request headers: it is never part of a URL, a message, a return value or the catalog.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import get_session, get_token, hf_hub_url
from huggingface_hub.utils import build_hf_headers
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from zoo.crawl.pacing import BucketUsage, QuotaPacer

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
LINKED_HEADERS = ("x-linked-etag", "x-linked-size")
T = TypeVar("T")


class TransientHubError(Exception):
    """An answer worth retrying; ``retry_after`` is the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, what: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(what)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class HubUnavailable(Exception):
    """Retries exhausted: the hub kept failing for this request."""


DISABLED_MESSAGE = "Access to this resource is disabled."  # the hub's X-Error-Message (huggingface_hub checks it too)


class HubRefused(Exception):
    """A final error answer (404, 401, 403, ...); ``code`` is the hub's ``X-Error-Code`` and ``message``
    its ``X-Error-Message`` when it sent them."""

    def __init__(self, status: int, code: str | None, what: str, message: str | None = None) -> None:
        super().__init__(f"{what}: HTTP {status}" + (f" {code}" if code else ""))
        self.status = status
        self.code = code
        self.message = message

    @property
    def disabled(self) -> bool:
        """The hub disabled the repo (403 with its message) or blocked it for legal reasons (451): a fact of
        the repo that no credentials change."""
        return self.status == 451 or (self.status == 403 and self.message == DISABLED_MESSAGE)

    @property
    def access_denied(self) -> bool:
        """Refused to these credentials (a gate not accepted, a private repo): others may be let in."""
        return self.status in (401, 403) and not self.disabled


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to insist.

    ``attempts`` failed tries at most, waits doubling from ``backoff_s`` up to ``max_wait_s`` (about 50 s
    in all by default); rate-limited tries (429) do not count, but after ``max_rate_limited_s`` of them
    the request gives up. A ``Retry-After`` is waited as asked, up to ``max_retry_after_s``.
    """

    attempts: int = 8
    backoff_s: float = 0.5
    max_wait_s: float = 16.0
    max_retry_after_s: float = 300.0
    max_rate_limited_s: float = 900.0
    timeout_s: float = 60.0


class HubHttp:
    """GET requests to ``endpoint`` with the retry policy; thread-safe, one instance per crawl.

    ``token`` None means the user's own credentials as ``huggingface_hub`` finds them (``HF_TOKEN``, else
    the token saved by ``hf auth login``); False means anonymous.
    """

    def __init__(
        self, endpoint: str, token: str | Literal[False] | None = None, retry: RetryPolicy | None = None
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.retry = retry or RetryPolicy()
        token = get_token() if token is None else token
        self._headers = build_hf_headers(token=token or False, library_name="zoo-recycler")
        self.credentials = credentials_label(token or None)
        self.pacer = QuotaPacer()
        self._lock = threading.Lock()
        self._requests = 0

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (retries and redirects included)."""
        with self._lock:
            return self._requests

    def usage(self) -> list[BucketUsage]:
        """Requests used and remaining per rate-limit bucket, as the hub announced them."""
        return self.pacer.usage()

    def file_url(self, repo_id: str, filename: str, revision: str | None) -> str:
        """``resolve`` URL of a repo file; the name is URL-quoted, never used as a local path."""
        return hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)

    def get(
        self,
        url: str,
        *,
        what: str,
        parse: Callable[[httpx2.Response], T],
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """GET ``url`` until ``parse`` accepts the answer, and return what it returns.

        ``parse`` may raise ``TransientHubError`` to reject a damaged body (it is then fetched again).
        ``what`` names the request in errors (e.g. ``"adapter_config.json"``).
        """
        tries = rate_limited = 0

        def give_up(state: RetryCallState) -> bool:
            nonlocal tries, rate_limited
            tries = state.attempt_number
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, TransientHubError) and error.rate_limited:
                rate_limited += 1
                return state.seconds_since_start > self.retry.max_rate_limited_s
            return tries - rate_limited >= self.retry.attempts

        retrying = Retrying(
            stop=give_up, wait=self._wait, retry=retry_if_exception_type(TransientHubError), reraise=True
        )
        try:
            return retrying(lambda: parse(self._attempt(url, what, params, headers)))
        except TransientHubError as err:
            limited = f", {rate_limited} of them rate-limited" if rate_limited else ""
            raise HubUnavailable(f"{what}: {err} (gave up after {tries} tries{limited})") from err

    def _attempt(self, url: str, what: str, params: Any, headers: Mapping[str, str] | None) -> httpx2.Response:
        """One GET, its redirects followed by hand; the redirect's ``X-Linked-*`` headers carried to the answer."""
        request_headers = {**self._headers, **(headers or {})}
        linked: dict[str, str] = {}
        for _ in range(MAX_REDIRECTS):
            response = self._send(url, params, request_headers)
            if not response.has_redirect_location:
                response.headers.update({k: v for k, v in linked.items() if k not in response.headers})
                return self._checked(response, what)
            linked = linked or {k: response.headers[k] for k in LINKED_HEADERS if k in response.headers}
            target = urljoin(str(response.url), response.headers["location"])
            if _origin(target) != _origin(url):  # a CDN's signed URL: the token stays with the hub
                request_headers = {k: v for k, v in request_headers.items() if k.lower() != "authorization"}
            url, params = target, None
        raise HubRefused(310, None, f"{what}: more than {MAX_REDIRECTS} redirects")

    def _send(self, url: str, params: Any, headers: Mapping[str, str]) -> httpx2.Response:
        kind = "resolve" if "/resolve/" in urlsplit(url).path else "api"
        self.pacer.acquire(kind)
        self._count(1)
        try:
            response = get_session().get(
                url, params=params, headers=headers, timeout=self.retry.timeout_s, follow_redirects=False
            )
        except BaseException as err:
            self.pacer.release(kind, {}, None, None)  # no answer: nothing learnt, the request is no longer in flight
            if isinstance(err, httpx2.TransportError):
                raise TransientHubError(f"{type(err).__name__}") from err
            raise
        retry_after = _retry_after_seconds(response.headers.get("retry-after"))
        self.pacer.release(kind, response.headers, response.status_code, retry_after, self.retry.max_retry_after_s)
        return response

    @staticmethod
    def _checked(response: httpx2.Response, what: str) -> httpx2.Response:
        status = response.status_code
        if status in RETRY_STATUSES:
            retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            raise TransientHubError(f"HTTP {status}", retry_after, rate_limited=status == 429)
        if status >= 400:
            headers = response.headers
            raise HubRefused(status, headers.get("x-error-code"), what, headers.get("x-error-message"))
        return response

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientHubError) and error.rate_limited:
            return 0.0  # the pacer holds the next try until the window resets
        if isinstance(error, TransientHubError) and error.retry_after is not None:
            return min(error.retry_after, self.retry.max_retry_after_s)
        backoff = wait_exponential_jitter(
            multiplier=self.retry.backoff_s, max=self.retry.max_wait_s, jitter=self.retry.backoff_s
        )
        return backoff(state)

    def _count(self, n: int) -> None:
        with self._lock:
            self._requests += n


def credentials_label(token: str | None) -> str:
    """Which credentials a crawl used, safe to store: 'anonymous' or a short one-way digest of the token,
    so that repos refused to some credentials are read again with others."""
    if not token:
        return "anonymous"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date is treated as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def whole_body(response: httpx2.Response) -> bytes:
    """The body of a whole-file download, checked against the content hash the hub sent.

    For an LFS file that is the redirect's ``X-Linked-Etag`` (its sha256; the CDN's own ETag is no
    content hash), else the hub's ``ETag``: the git blob id (sha1) or the sha256. A body matching
    neither was damaged on the way and is fetched again.
    """
    body = response.content
    etag = (response.headers.get("x-linked-etag") or response.headers.get("etag", "")).removeprefix("W/").strip('"')
    if len(etag) in (40, 64) and all(c in "0123456789abcdef" for c in etag):
        blob_id = hashlib.sha1(f"blob {len(body)}\0".encode() + body).hexdigest()  # noqa: S324 (git's id)
        if etag not in (blob_id, hashlib.sha256(body).hexdigest()):
            raise TransientHubError("body does not match its ETag")
    return body


def json_body(response: httpx2.Response) -> Any:
    """The JSON of an API answer; an unparsable one is taken for a damaged transfer and fetched again."""
    try:
        return response.json()
    except ValueError as err:
        raise TransientHubError("unparsable JSON answer") from err
