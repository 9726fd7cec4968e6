"""HTTP to one hub for the crawler: bounded retries, ``Retry-After`` honoured, every request counted.

Retryable answers (408, 425, 429, 5xx), dropped connections and bodies that fail a caller's check
(a truncated page) are retried with exponential backoff and jitter. A 429 is not a failure of the
request but a request to slow down: it is waited as its ``Retry-After`` says, pauses every thread of
the crawl (the limit applies to the whole client) and does not use up the attempts, only a time
budget. Any other error status is final and raised as ``HubRefused``. The token only ever goes into
request headers: it is never part of a URL, a message or a return value.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from huggingface_hub import get_session, hf_hub_url
from huggingface_hub.utils import build_hf_headers
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")


class TransientHubError(Exception):
    """An answer worth retrying; ``retry_after`` is the server's ``Retry-After`` in seconds, if any."""

    def __init__(self, what: str, retry_after: float | None = None, rate_limited: bool = False) -> None:
        super().__init__(what)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class HubUnavailable(Exception):
    """Retries exhausted: the hub kept failing for this request."""


class HubRefused(Exception):
    """A final error answer (404, 401, 403, ...); ``code`` is the hub's ``X-Error-Code`` when it sent one."""

    def __init__(self, status: int, code: str | None, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}" + (f" {code}" if code else ""))
        self.status = status
        self.code = code


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
    """GET requests to ``endpoint`` with the retry policy; thread-safe, one instance per crawl."""

    def __init__(self, endpoint: str, token: str | None = None, retry: RetryPolicy | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._headers = build_hf_headers(token=token or False, library_name="zoo-recycler")
        self._lock = threading.Lock()
        self._requests = 0
        self._paused_until = 0.0

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (retries and redirects included)."""
        with self._lock:
            return self._requests

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
        self._respect_pause()
        try:
            response = get_session().get(
                url,
                params=params,
                headers={**self._headers, **(headers or {})},
                timeout=self.retry.timeout_s,
                follow_redirects=True,
            )
        except httpx2.TransportError as err:
            self._count(1)
            raise TransientHubError(f"{type(err).__name__}") from err
        self._count(1 + len(response.history))
        status = response.status_code
        if status in RETRY_STATUSES:
            retry_after = _retry_after_seconds(response.headers.get("retry-after"))
            if retry_after is not None:
                self._pause(retry_after)
            raise TransientHubError(f"HTTP {status}", retry_after, rate_limited=status == 429)
        if status >= 400:
            raise HubRefused(status, response.headers.get("x-error-code"), what)
        return response

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientHubError) and error.retry_after is not None:
            return min(error.retry_after, self.retry.max_retry_after_s)
        backoff = wait_exponential_jitter(
            multiplier=self.retry.backoff_s, max=self.retry.max_wait_s, jitter=self.retry.backoff_s
        )
        return backoff(state)

    def _count(self, n: int) -> None:
        with self._lock:
            self._requests += n

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _respect_pause(self) -> None:
        """Wait out a rate limit; the jitter spreads the threads' restart instead of a burst at once."""
        with self._lock:
            delay = self._paused_until - time.monotonic()
        if delay > 0:
            time.sleep(delay + random.uniform(0, self.retry.backoff_s))


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
    """The body of a whole-file download, checked against its ``ETag`` when the hub sent a content hash.

    The hub's ETag of a file is its git blob id (sha1) or, for LFS files, its sha256; a body matching
    neither was damaged on the way and is fetched again.
    """
    body = response.content
    etag = response.headers.get("etag", "").removeprefix("W/").strip('"')
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
