"""Pacing a whole crawl to the hub's rate-limit windows, so that it waits instead of running into 429s.

The hub counts requests per bucket (api, resolvers, pages) in fixed windows and announces on each answer
``RateLimit: "bucket";r=remaining;t=seconds-to-reset`` and ``RateLimit-Policy: ...;q=quota;w=window``
(parsed by ``huggingface_hub.utils.parse_ratelimit_headers``). One pacer serves every thread of a crawl:
when a bucket's remaining requests are all in flight, every thread that needs that bucket waits for
its window to reset; a 429 does the same for its bucket (or for all, when it names none). The first
request of each kind goes alone, so that its answer tells the quota before the other threads spend it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from huggingface_hub.utils import parse_ratelimit_headers

SAME_WINDOW_S = 1.5  # two announcements whose resets differ by less belong to the same window (t= is rounded up)
RESET_MARGIN_S = 0.5  # waited past an announced reset (the server's clock rounds t up to whole seconds)
PROBE_POLL_S = 0.05


@dataclass
class Bucket:
    """What the hub last said about one bucket, and what this crawl did with it."""

    used: int = 0
    in_flight: int = 0
    remaining: int | None = None  # None: unknown (nothing announced, or a window just reset)
    reset_at: float = 0.0  # monotonic time of the announced reset
    quota: int | None = None
    window_s: int | None = None


@dataclass(frozen=True)
class BucketUsage:
    """A bucket as the progress bar and the crawl's artifact show it."""

    bucket: str
    used: int
    remaining: int | None
    quota: int | None
    window_s: int | None
    reset_in_s: float


class QuotaPacer:
    """Thread-safe: ``acquire`` before a request of some kind (``api``, ``resolve``), ``release`` with its answer."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._buckets: dict[str, Bucket] = {}
        self._bucket_of_kind: dict[str, str] = {}
        self._answered: set[str] = set()  # kinds that had an answer: their bucket (or that they have none) is known
        self._probing: set[str] = set()
        self._paused_until = 0.0
        self._blocked_until = 0.0
        self.blocked_s = 0.0  # wall time during which some request waited for a window (an ETA leaves it out)
        self.rate_limited = 0

    def acquire(self, kind: str) -> None:
        """Wait until a request of ``kind`` fits its bucket's remaining quota, then count it in flight."""
        with self._lock:
            while True:
                now = time.monotonic()
                delay = self._delay(kind, now)
                if delay <= 0:
                    break
                self.blocked_s += max(0.0, now + delay - max(now, self._blocked_until))
                self._blocked_until = max(self._blocked_until, now + delay)
                self._lock.wait(timeout=delay)
            if kind not in self._answered:
                self._probing.add(kind)
            bucket = self._bucket(kind)
            if bucket is not None:
                bucket.in_flight += 1

    def release(
        self,
        kind: str,
        headers: Mapping[str, str],
        status: int | None,
        retry_after_s: float | None,
        max_pause_s: float = 300.0,
    ) -> None:
        """Learn from an answer's ``RateLimit`` headers (``status`` None: no answer came); a 429 pauses its
        bucket (all of them if it names none) for what the hub says, at most ``max_pause_s``."""
        info = parse_ratelimit_headers(headers)
        now = time.monotonic()
        with self._lock:
            self._probing.discard(kind)
            if status is not None:
                self._answered.add(kind)
            bucket = self._bucket(kind)
            if bucket is not None:
                bucket.in_flight = max(0, bucket.in_flight - 1)
            if info is not None:
                if bucket is None:  # the first answer of this kind: now we know its bucket
                    bucket = self._buckets.setdefault(info.resource_type, Bucket())
                    self._bucket_of_kind[kind] = info.resource_type
                bucket.used += 1
                reset_at = now + min(info.reset_in_seconds, max_pause_s)
                self._announce(bucket, info.remaining, reset_at, info.limit, info.window_seconds)
            if status == 429:
                self.rate_limited += 1
                wait = info.reset_in_seconds if info is not None else retry_after_s
                if bucket is None or info is None:
                    pause = min(wait if wait is not None else 1.0, max_pause_s)
                    self._paused_until = max(self._paused_until, now + pause)
                else:
                    bucket.remaining = 0
            self._lock.notify_all()

    def usage(self) -> list[BucketUsage]:
        now = time.monotonic()
        with self._lock:
            return [
                BucketUsage(name, b.used, b.remaining, b.quota, b.window_s, max(0.0, b.reset_at - now))
                for name, b in sorted(self._buckets.items())
            ]

    def _bucket(self, kind: str) -> Bucket | None:
        name = self._bucket_of_kind.get(kind)
        return self._buckets.get(name) if name else None

    def _delay(self, kind: str, now: float) -> float:
        """Seconds to wait before a request of ``kind`` may go (0: now)."""
        if self._paused_until > now:
            return self._paused_until - now
        if kind in self._probing:
            return PROBE_POLL_S  # the first request of this kind is out: its answer tells the quota
        bucket = self._bucket(kind)
        if bucket is None or bucket.remaining is None:
            return 0.0
        if now >= bucket.reset_at + RESET_MARGIN_S:  # a new window: the whole quota, until an answer says more
            bucket.remaining = bucket.quota
            bucket.reset_at += bucket.window_s or 0
            if bucket.remaining is None or bucket.reset_at < now:
                bucket.remaining = None
                return 0.0
        if bucket.remaining - bucket.in_flight > 0:
            return 0.0
        return bucket.reset_at + RESET_MARGIN_S - now

    @staticmethod
    def _announce(bucket: Bucket, remaining: int, reset_at: float, quota: int | None, window_s: int | None) -> None:
        """Answers arrive out of order: within one window the lowest ``remaining`` is the truth."""
        same_window = abs(reset_at - bucket.reset_at) < SAME_WINDOW_S and bucket.remaining is not None
        bucket.remaining = min(bucket.remaining, remaining) if same_window else remaining
        if not same_window:
            bucket.reset_at = reset_at
        bucket.quota, bucket.window_s = quota or bucket.quota, window_s or bucket.window_s


def crawl_eta_s(left: int, done: int, busy_s: float, usage: list[BucketUsage]) -> float | None:
    """Seconds until ``left`` more repos are read, at the pace so far and within each bucket's quota.

    ``busy_s``: time spent reading ``done`` repos, waits for a window left out. Each bucket's requests
    per repo so far tell what the rest needs; what exceeds the window's remaining requests waits for the
    reset, then for as many full windows as it takes. None before the first repo.
    """
    if done <= 0:
        return None
    seconds_per_repo = busy_s / done
    eta = left * seconds_per_repo
    for bucket in usage:
        if not (bucket.quota and bucket.window_s and bucket.remaining is not None and bucket.used):
            continue
        per_repo = bucket.used / done
        beyond = per_repo * left - bucket.remaining
        if beyond <= 0:
            continue
        windows = math.ceil(beyond / bucket.quota)
        last_window_repos = (beyond - (windows - 1) * bucket.quota) / per_repo
        eta = max(eta, bucket.reset_in_s + (windows - 1) * bucket.window_s + last_window_repos * seconds_per_repo)
    return eta


def usage_line(usage: list[BucketUsage]) -> str:
    """``resolvers 812 used, 188 left of 1000/300s; api ...`` for a progress bar."""
    parts = []
    for b in usage:
        left = "?" if b.remaining is None else str(b.remaining)
        quota = f" of {b.quota}/{b.window_s}s" if b.quota and b.window_s else ""
        parts.append(f"{b.bucket} {b.used} used, {left} left{quota}")
    return "; ".join(parts)
