"""Progress of a long step: a Prefect progress artifact for the UI, and local listeners (the CLI's bars)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

StepListener = Callable[[str, int, int], None]  # (step description, done, total)
_listeners: list[StepListener] = []


@contextmanager
def step_listener(listener: StepListener) -> Iterator[None]:
    """Call ``listener`` on every step report made in this process while inside."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class StepProgress:
    """``done`` of ``total`` items of one step, e.g. adapters fingerprinted or candidates evaluated."""

    def __init__(self, key: str, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.artifact_id: UUID = create_progress_artifact(progress=0.0, key=key, description=f"{what}: 0/{total}")
        self._notify()

    def advance(self, n: int = 1) -> None:
        self.done += n
        percent = 100.0 * self.done / self.total if self.total else 100.0
        update_progress_artifact(self.artifact_id, percent, description=f"{self.what}: {self.done}/{self.total}")
        self._notify()

    def _notify(self) -> None:
        notify(self.what, self.done, self.total)


def notify(what: str, done: int, total: int) -> None:
    """Tell the local listeners (e.g. the CLI's progress bars) how far a step is."""
    for listener in list(_listeners):
        listener(what, done, total)
