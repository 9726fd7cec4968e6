"""The local hub made as strict as huggingface.co, for crawlers that must survive the real one.

``Realism`` turns on what the real hub does and a kind local server would not (DESIGN.md section 8):

* LFS files (weights, or anything over 10 MiB) answer ``resolve`` with a 302 to a CDN path; the 302
  carries ``X-Linked-Etag`` / ``X-Linked-Size`` (the sha256 and size), the CDN answer no repo headers;
* a missing repo answers anonymous clients 401 ``RepoNotFound`` (404 to a token); a private repo is, to
  every client but its owner's tokens, a missing one: the same answers, and absent from listings;
* a gated repo's files answer 401 (no token) or 403 (a token that did not accept the gate) ``GatedRepo``;
  a disabled repo 403;
* a renamed repo (``formerly`` in the new repo's ``.hub.json``) redirects its old id;
* fixed windows of per-bucket quotas (api, resolvers) per token, announced by ``RateLimit`` and
  ``RateLimit-Policy`` on every answer; a 429 carries no ``Retry-After``;
* ``limit`` is the page size; without a stable ``sort`` the order moves between pages (trending);
* listing ``expand`` values the real hub refuses in listings answer 400.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.localhub.repos import RepoFile
from zoo.localhub.routes import CDN, FILE

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz", ".zip")
LFS_MIN_BYTES = 10 << 20
ALWAYS_READABLE = frozenset({"README.md", ".gitattributes"})  # a gated repo's card stays public
LISTING_REFUSED_EXPAND = frozenset({"baseModels", "childrenModelCount", "usedStorage"})  # info-only fields
DISABLED_MESSAGE = "Access to this resource is disabled."
ANONYMOUS = ""


@dataclass(frozen=True)
class Quota:
    """Requests per window and bucket (the hub's documented anonymous tier by default)."""

    api: int = 500
    resolvers: int = 3000

    def of(self, bucket: str) -> int:
        return getattr(self, bucket)


@dataclass(frozen=True)
class Realism:
    """How strict the local hub is. ``anonymous`` / ``authenticated``: the quotas (None: unlimited);
    ``granted_tokens``: tokens that accepted every gate; ``owner_tokens``: tokens of the account owning the
    private repos, the only ones that see them."""

    window_s: float = 300.0
    anonymous: Quota | None = None
    authenticated: Quota | None = None
    granted_tokens: frozenset[str] = field(default_factory=frozenset)
    owner_tokens: frozenset[str] = field(default_factory=frozenset)

    def quota(self, token: str) -> Quota | None:
        return self.authenticated if token else self.anonymous

    def hides(self, meta: Mapping[str, Any], token: str) -> bool:
        """Whether a repo (its ``.hub.json``) is hidden from ``token``: private, and not the owner's."""
        return bool(meta.get("private")) and token not in self.owner_tokens


def is_lfs(rf: RepoFile) -> bool:
    """Stored in LFS on the real hub: weight-like suffixes (the default ``.gitattributes``) or large files."""
    return rf.path.endswith(LFS_SUFFIXES) or rf.size >= LFS_MIN_BYTES


def bucket_of(endpoint: str) -> str | None:
    """The rate-limit bucket of a request; CDN downloads count in none."""
    if endpoint == CDN:
        return None
    return "resolvers" if endpoint == FILE else "api"


def bearer_token(header: str | None) -> str:
    """The bearer token of an ``Authorization`` header, or ``ANONYMOUS``."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ANONYMOUS


@dataclass(frozen=True)
class Allowance:
    """One request's standing in its bucket's window; ``allowed`` False means answer 429."""

    allowed: bool
    bucket: str
    remaining: int
    reset_s: int
    quota: int
    window_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit": f'"{self.bucket}";r={self.remaining};t={self.reset_s}',
            "RateLimit-Policy": f'"fixed window";"{self.bucket}";q={self.quota};w={self.window_s}',
        }


class FixedWindows:
    """Per (token, bucket) request counts in fixed windows that start when the server does."""

    def __init__(self, realism: Realism) -> None:
        self.realism = realism
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._used: dict[tuple[str, str, int], int] = {}

    def take(self, token: str, bucket: str) -> Allowance | None:
        """Count one request; None when this client has no quota (unlimited)."""
        quota = self.realism.quota(token)
        if quota is None:
            return None
        window = self.realism.window_s
        elapsed = time.monotonic() - self._started
        index = int(elapsed // window)
        reset_s = max(1, math.ceil((index + 1) * window - elapsed))
        limit = quota.of(bucket)
        with self._lock:
            used = self._used.get((token, bucket, index), 0)
            allowed = used < limit
            if allowed:
                used += 1
                self._used[(token, bucket, index)] = used
        return Allowance(allowed, bucket, max(0, limit - used), reset_s, limit, math.ceil(window))
