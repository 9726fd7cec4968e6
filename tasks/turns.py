"""Whose turn it is to move a champion: an OS file lock per registered model, so registrations queue.

Two MLflow registrations that read the champion at the same moment would both think they beat it, so the
registry's read-decide-move is held in a turn: a ``flock`` on ``ZOO_HOME/locks/registry-<model>.lock``
(``filelock``). The OS drops the lock of a process that dies, so a registration killed mid-way never
blocks the next (no lease to reclaim). It serialises the registrations of one machine, where the
orchestrating flows run; across machines the compare-and-set in ``register_if_better`` still keeps a
champion from being moved away from one it did not read.
"""

from __future__ import annotations

import re

from filelock import FileLock

from zoo.settings import load_settings


def registry_turn(model_name: str) -> FileLock:
    """The turn of ``model_name`` (a context manager: entered, it waits for any other holder, thread or process)."""
    locks = load_settings().locks_dir
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(locks / f"registry-{re.sub(r'[^A-Za-z0-9._-]', '_', model_name)}.lock", is_singleton=True)
