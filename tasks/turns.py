"""Whose turn it is: a Prefect global concurrency limit of one slot, so that registrations queue.

Two MLflow registrations that read the champion at the same moment would both think they beat it, so the
registry's read-decide-move is held in a turn of ``zoo-registry`` (created with one slot if missing), on
one machine or many. A held slot is a lease that Prefect renews while its holder lives; a team's
``prefect server`` frees the slot of a holder that died once ``LEASE_S`` has passed. Prefect's temporary
server does not (it runs no lease repossessor): after a registration was killed there,
``prefect gcl update zoo-registry --active-slots 0`` frees it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

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
