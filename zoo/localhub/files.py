"""Serving one repo file: the headers ``hf_hub_download`` relies on, byte ranges, and truncation faults.

``huggingface_hub`` reads ``ETag`` (content hash, quoted), ``X-Repo-Commit`` and ``Content-Length`` from a
HEAD, then streams a GET, resuming with ``Range: bytes=N-`` after a dropped connection;
``get_safetensors_metadata`` reads only the header with ``Range: bytes=0-100000``.
"""

from __future__ import annotations

import mimetypes
import re

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from zoo.localhub.repos import Repo, RepoFile

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CHUNK = 1 << 20


class RangeNotSatisfiable(Exception):
    """The requested byte range starts beyond the end of the file (answered 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` for a single ``bytes=`` range, or None to send the whole file.

    Multi-range and malformed headers are ignored (a full 200 answer is allowed by RFC 9110).
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
        if last and int(last) < start:
            return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, end


def file_headers(repo: Repo, rf: RepoFile) -> dict[str, str]:
    """Headers that identify a file version, sent on every answer about it (404s of a file included)."""
    return {
        "ETag": f'"{rf.digest.sha256}"',
        "X-Repo-Commit": repo.sha,
        "Accept-Ranges": "bytes",
    }


def cdn_headers(rf: RepoFile) -> dict[str, str]:
    """What a CDN answers about a file: its own ETag (not the content hash) and no repo headers."""
    return {"ETag": f'"{rf.digest.sha256[:32]}"', "Accept-Ranges": "bytes"}


class RepoFileResponse(Response):
    """A file (or a range of it), streamed from disk off the event loop.

    With ``truncate_at`` the body stops after that many bytes while ``Content-Length`` still promises the
    whole range; returning without finishing makes uvicorn close the connection, as a dropped
    connection would. With ``corrupt_at`` the byte at that offset of the body is flipped (the size stays
    right: only a content hash tells). ``from_cdn`` sends the CDN's headers instead of the repo's.
    """

    def __init__(
        self,
        repo: Repo,
        rf: RepoFile,
        byte_range: tuple[int, int] | None,
        *,
        head: bool,
        truncate_at: int | None = None,
        corrupt_at: int | None = None,
        from_cdn: bool = False,
    ) -> None:
        self.rf = rf
        self.start, self.end = byte_range or (0, rf.size)
        self.head = head
        self.truncate_at = truncate_at
        self.corrupt_at = corrupt_at
        headers = cdn_headers(rf) if from_cdn else file_headers(repo, rf)
        headers["Content-Length"] = str(self.end - self.start)
        headers["Content-Type"] = mimetypes.guess_type(rf.path)[0] or "application/octet-stream"
        if byte_range is not None:
            headers["Content-Range"] = f"bytes {self.start}-{self.end - 1}/{rf.size}"
        self.status_code = 206 if byte_range is not None else 200
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if self.head:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        remaining = self.end - self.start
        budget = remaining if self.truncate_at is None else min(self.truncate_at, remaining)
        sent = 0
        async with await anyio.open_file(self.rf.abspath, "rb") as fh:
            await fh.seek(self.start)
            while budget > 0:
                chunk = await fh.read(min(_CHUNK, budget))
                if not chunk:
                    break
                if self.corrupt_at is not None and sent <= self.corrupt_at < sent + len(chunk):
                    at = self.corrupt_at - sent
                    chunk = chunk[:at] + bytes([chunk[at] ^ 0xFF]) + chunk[at + 1 :]
                sent += len(chunk)
                budget -= len(chunk)
                remaining -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.truncate_at is None or remaining == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
