"""Fault injection: the misbehaviour of a real hub, on demand and reproducibly.

A crawler must survive rate limits, flaky 5xx answers, slow answers and connections that drop mid-body.
``Faults`` says how much of each; ``FaultInjector`` draws the decisions from one seeded RNG so a test
run is reproducible for a given request order.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass

SERVER_ERRORS = (500, 502, 503)


@dataclass(frozen=True)
class Faults:
    """How badly the local hub behaves.

    rate_limit: requests per second the server accepts (token bucket, burst of ``max(1, rate)``);
        the excess is answered 429 with ``Retry-After`` (whole seconds). None: unlimited.
    error_rate: fraction of requests answered 500, 502 or 503.
    latency_ms: delay added before every answer.
    truncate_rate: fraction of file downloads (GET resolve) whose body stops short while
        ``Content-Length`` still promises the whole file (the connection is then closed).
    corrupt_rate: fraction of whole-file downloads with one byte flipped (the length stays right).
    seed: seed of the RNG behind ``error_rate``, ``truncate_rate`` and ``corrupt_rate``.
    """

    rate_limit: float | None = None
    error_rate: float = 0.0
    latency_ms: float = 0.0
    truncate_rate: float = 0.0
    corrupt_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive (or None for no limit)")
        for name in ("error_rate", "truncate_rate", "corrupt_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")


class FaultInjector:
    """Thread-safe decisions for one server, drawn from ``faults.seed``."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        rate = self.faults.rate_limit
        self._capacity = max(1.0, rate) if rate else 0.0
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    @property
    def latency_s(self) -> float:
        return self.faults.latency_ms / 1000.0

    def throttle(self) -> int | None:
        """None if the request may pass, else the seconds to put in ``Retry-After``."""
        rate = self.faults.rate_limit
        if rate is None:
            return None
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / rate))

    def server_error(self) -> int | None:
        """A 5xx status to answer instead of the real one, or None."""
        if self.faults.error_rate <= 0:
            return None
        with self._lock:
            if self._rng.random() >= self.faults.error_rate:
                return None
            return self._rng.choice(SERVER_ERRORS)

    def truncate(self, length: int) -> int | None:
        """How many bytes of a ``length``-byte body to send before dropping the connection, or None."""
        return self._offset(self.faults.truncate_rate, length)

    def corrupt(self, length: int) -> int | None:
        """Which byte of a ``length``-byte body to flip, or None."""
        return self._offset(self.faults.corrupt_rate, length)

    def _offset(self, rate: float, length: int) -> int | None:
        """With probability ``rate``, an offset within ``length`` bytes."""
        if rate <= 0 or length <= 0:
            return None
        with self._lock:
            if self._rng.random() >= rate:
                return None
            return self._rng.randrange(length)
