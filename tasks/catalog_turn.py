"""The catalog opened in turn: every process waits for the ``zoo-catalog`` slot before it opens the DuckDB
file, so the crawl and the recycle (or two recycles) queue instead of failing on DuckDB's file lock.

Tasks and flows open the catalog through :func:`open_catalog`, never ``Catalog.open``: the slot is held
exactly while this process has the file open, and only by the first of its threads to open it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog import Catalog
from tasks.turns import CATALOG_LIMIT, ProcessTurn

catalog_turn = ProcessTurn(CATALOG_LIMIT)


@contextmanager
def open_catalog(path: str | Path) -> Iterator[Catalog]:
    """The catalog at ``path``, opened for writing once this process holds the catalog's turn."""
    with catalog_turn.held(), Catalog.open(path) as cat:
        yield cat
