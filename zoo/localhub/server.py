"""Running the local hub with uvicorn: in a background thread (tests, demos) or in the foreground (CLI).

The socket is bound before uvicorn starts, so ``port=0`` yields a free port with no race and the URL
is known before the first request.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from zoo.localhub.api import DEFAULT_PAGE_SIZE, LocalHub, create_app
from zoo.localhub.counters import RequestLog
from zoo.localhub.faults import Faults
from zoo.localhub.realism import Realism
from zoo.localhub.repos import DATASET, MODEL

_START_TIMEOUT_S = 30.0


class HubURL(str):
    """The base URL of a running local hub, usable wherever a string is (``HfApi(endpoint=url)``,
    ``HF_ENDPOINT``), that also carries the server's live state.

    ``url.requests`` is its :class:`RequestLog` (``by_kind()``, ``by_path()``, ``by_status()``, ``total``,
    ``reset()``); ``url.hub`` is the :class:`LocalHub` (assign ``url.hub.faults`` to change faults).
    """

    hub: LocalHub

    def __new__(cls, url: str, hub: LocalHub) -> HubURL:
        obj = super().__new__(cls, url)
        obj.hub = hub
        return obj

    @property
    def requests(self) -> RequestLog:
        return self.hub.requests


def check_write_access(host: str, writable: bool, write_token: str | None) -> None:
    """Refuse set-ups where pushes would be open to anyone who can reach the port, or to nobody.

    Any token may write when no ``write_token`` is set: fine on loopback (one machine), not on an interface
    other machines reach."""
    if not writable:
        return
    if write_token is not None and not write_token.strip():
        raise ValueError("the write token is empty: set a non-empty one, or none to let any token write on loopback")
    if write_token is None and not _is_loopback(host):
        raise ValueError(f"a writable hub on {host} would let anyone who reaches it push with any token: set a "
                         "write token (--write-token or ZOO_HUB_WRITE_TOKEN), or serve on 127.0.0.1")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on such sockets, and without it every
    # answer waits ~40 ms for a delayed ACK (headers and body are separate writes).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections queue from now on, even before uvicorn's loop runs
    return sock


def _cdn_socket(hub: LocalHub, host: str) -> list[socket.socket]:
    """A realistic hub's CDN listens on a port of its own: another origin, as the real CDN is another host."""
    if hub.realism is None:
        return []
    sock = _bind(host, 0)
    hub.cdn_port = sock.getsockname()[1]
    return [sock]


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def serve_in_thread(
    root: Path,
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    writable: bool = False,
    write_token: str | None = None,
    realism: Realism | None = None,
) -> Iterator[HubURL]:
    """Serve ``root`` on a background uvicorn thread; yields the base URL (a :class:`HubURL`).

    ``page_size`` caps the entries per listing page (small values exercise ``Link`` pagination);
    ``writable`` / ``write_token`` turn on pushes (see :func:`create_app`, :func:`check_write_access`);
    ``realism`` makes the hub as strict as huggingface.co (``realism.py``). The server stops when the
    context exits.
    """
    check_write_access(host, writable, write_token)
    app = create_app(root, faults, page_size=page_size, writable=writable, write_token=write_token, realism=realism)
    sock = _bind(host, port)
    sockets = [sock, *_cdn_socket(app.state.hub, host)]
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, name="localhub", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the local hub server failed to start (see the log)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the local hub server did not start within {_START_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        yield HubURL(_url(sock), app.state.hub)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for s in sockets:
            s.close()


def run_server(
    root: Path,
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 8800,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    announce: Callable[[str], None] = print,
    writable: bool = False,
    write_token: str | None = None,
    realism: Realism | None = None,
) -> None:
    """Serve ``root`` in the foreground until interrupted; announces the URL once the index is built."""
    check_write_access(host, writable, write_token)
    app = create_app(root, faults, page_size=page_size, writable=writable, write_token=write_token, realism=realism)
    hub: LocalHub = app.state.hub
    models, datasets = len(hub.index.list(MODEL)), len(hub.index.list(DATASET))  # hashes everything once
    sock = _bind(host, port)
    sockets = [sock, *_cdn_socket(hub, host)]
    url = _url(sock)
    announce(f"Local hub serving {models} model repos and {datasets} dataset repos from {hub.index.root} at {url}")
    announce(f"HF_ENDPOINT={url}")
    if realism is not None:
        announce("Realistic mode: LFS files redirect to a CDN path, missing repos answer anonymous clients 401, "
                 "gated repos need a token, listings move unless sorted, quotas per 5-minute window")
    if writable:
        token = "the token set with --write-token" if write_token else "any token"
        announce(f"Writes are on: huggingface_hub may create repos and push with {token} (HF_TOKEN)")
    try:
        uvicorn.Server(uvicorn.Config(app, lifespan="off")).run(sockets=sockets)
    finally:
        for s in sockets:
            s.close()
