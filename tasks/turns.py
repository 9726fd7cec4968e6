"""Whose turn it is: Prefect global concurrency limits of one slot, so that writers queue instead of failing.

DuckDB lets one process at a time open a catalog file, and a second opener fails at once on the file
lock; two MLflow registrations that read the champion at the same moment would both think they beat it.
Both are queued on a global concurrency limit of the Prefect API (created with one slot if missing), so
the hourly crawl and a daily recycle, on one machine or many, wait for each other. A held slot is a lease
that Prefect renews while its holder lives; a team's ``prefect server`` frees the slot of a holder that
died once ``LEASE_S`` has passed. Prefect's temporary server does not (it runs no lease repossessor): after
a writer was killed there, ``prefect gcl update zoo-catalog --active-slots 0`` frees the catalog.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

CATALOG_LIMIT = "zoo-catalog"
REGISTRY_LIMIT = "zoo-registry"
LEASE_S = 60.0

_known_limits: set[tuple[str, str]] = set()


def ensure_limit(name: str) -> None:
    """Create the one-slot limit ``name`` unless it exists (a missing limit would limit nothing)."""
    with get_client(sync_client=True) as client:
        key = (str(client.api_url), name)
        if key in _known_limits:
            return
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass  # another process created it first
        _known_limits.add(key)


@contextmanager
def turn(name: str) -> Iterator[None]:
    """Hold the one slot of ``name`` for the block, waiting as long as another holder keeps it."""
    ensure_limit(name)
    with concurrency(name, occupy=1, lease_duration=LEASE_S, strict=True):
        yield


class ProcessTurn:
    """One slot shared by every thread of this process, held while any of them is inside :meth:`held`.

    The catalog needs this: the tasks of one flow run open it concurrently and nested (DuckDB shares one
    database between the connections of a process), and must not queue behind their own process. The slot
    is held by a keeper thread, so whichever thread leaves last can hand it back.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._holders = 0
        self._release: threading.Event | None = None
        self._keeper: threading.Thread | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                self._take()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._give_back()

    def _take(self) -> None:
        """Start the keeper and wait until it holds the slot (or re-raise why it could not)."""
        taken, release, failure = threading.Event(), threading.Event(), []

        def keep() -> None:
            try:
                with turn(self.name):
                    taken.set()
                    release.wait()
            except BaseException as err:  # noqa: BLE001  (handed to the thread that waits for the slot)
                failure.append(err)
                taken.set()

        # the keeper sees this thread's Prefect settings and run context (a test's temporary API URL)
        context = contextvars.copy_context()
        keeper = threading.Thread(target=context.run, args=(keep,), name=f"turn-{self.name}", daemon=True)
        keeper.start()
        taken.wait()
        if failure:
            keeper.join()
            raise failure[0]
        self._release, self._keeper = release, keeper

    def _give_back(self) -> None:
        assert self._release is not None and self._keeper is not None
        self._release.set()
        self._keeper.join()
        self._release = self._keeper = None

