"""The catalog file: a DuckDB database with the schema migrated, read and written as Arrow tables.

DuckDB lets one process open a file at a time (readers included, unless every opener is read-only).
Writers take turns: a process opens the file for writing only while it holds an OS file lock on
``<catalog>.lock`` (``filelock``: ``flock``), taken by the first of its threads to open the catalog and
given back when the last one closes it, so the hourly crawl and the daily recycle (or two recycles) wait
for each other instead of failing on DuckDB's lock. The OS drops the lock of a process that dies, so a
crashed writer never blocks the next one (no lease to reclaim). Readers in other processes open it
read-only (``Catalog.open(path, read_only=True)``), retrying while a writer holds it, for at most
``READ_WAIT_S`` seconds: a reader waits for a write, never for ever.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from filelock import FileLock, Timeout

from catalog.migrations import migrate
from catalog.queries import named_query

Rows = pa.Table | Sequence[Mapping[str, Any]]
READ_WAIT_S = 120.0
log = logging.getLogger(__name__)


class Catalog:
    """One open catalog. Every method binds its parameters; table names are checked against the schema."""

    def __init__(self, con: duckdb.DuckDBPyConnection, turn: FileLock | None = None) -> None:
        self.con = con
        self._turn = turn
        self._in_transaction = False

    @classmethod
    def open(cls, path: str | Path, read_only: bool = False, wait_s: float = READ_WAIT_S) -> Catalog:
        """Open (and for writers create and migrate) the catalog at ``path``; a reader waits up to
        ``wait_s`` seconds for a writer in another process to close it."""
        path = Path(path)
        if read_only:
            if not path.is_file():
                raise FileNotFoundError(f"no catalog at {path}: run `zoo crawl` first")
            return cls(_connect(path, read_only=True, wait_s=wait_s))
        path.parent.mkdir(parents=True, exist_ok=True)
        turn = writer_turn(path)
        try:
            con = _connect(path, read_only=False, wait_s=wait_s)  # a reader in another process may hold it briefly
            migrate(con)
        except BaseException:
            turn.release()
            raise
        return cls(con, turn)

    @classmethod
    def in_memory(cls) -> Catalog:
        """A migrated catalog that lives only as long as the object (tests, dry runs)."""
        con = duckdb.connect(":memory:")
        migrate(con)
        return cls(con)

    def close(self) -> None:
        self.con.close()
        if self._turn is not None:
            self._turn.release()
            self._turn = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run one statement and return its rows as Arrow (empty for statements without rows)."""
        relation = self.con.sql(sql, params=params)
        return relation.to_arrow_table() if relation is not None else pa.table({})

    def named(self, name: str, **params: Any) -> pa.Table:
        """Run the named query ``catalog/sql/queries/<name>.sql`` with ``$param`` values bound."""
        return self.query(named_query(name), params or None)

    def tables(self) -> list[str]:
        """Base tables of the catalog, sorted (views excluded)."""
        return [name for (name,) in self.con.execute(named_query("tables")).fetchall()]

    def primary_key(self, table: str) -> list[str]:
        rows = self.con.execute(named_query("primary_key"), {"table_name": self._checked(table)}).fetchall()
        return list(rows[0][0]) if rows else []

    def read_table(self, table: str) -> pa.Table:
        """All rows of ``table`` in primary-key order, so equal content gives equal Arrow tables."""
        order = self.primary_key(table) or self.columns(table)
        keys = ", ".join(_ident(c) for c in order)
        return self.query(f"SELECT * FROM {_ident(self._checked(table))} ORDER BY {keys}")

    def columns(self, table: str) -> list[str]:
        return self.schema(table).names

    def schema(self, table: str) -> pa.Schema:
        return self.query(f"SELECT * FROM {_ident(self._checked(table))} LIMIT 0").schema

    # --- writing -----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Catalog]:
        """Everything inside commits together or not at all (a crash mid-way leaves the previous state)."""
        if self._in_transaction:  # already atomic: part of the enclosing transaction
            yield self
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")
        finally:
            self._in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> None:
        self.con.execute(sql, params)

    def execute_named(self, name: str, **params: Any) -> None:
        self.con.execute(named_query(name), params or None)

    def upsert(self, table: str, rows: Rows) -> int:
        """Insert ``rows``, replacing whole rows with the same primary key.

        Replacing means delete-then-insert, so a column the rows leave out gets its default (or NULL)
        rather than keeping a stale value from the row it replaces.
        """
        batch = self.conform(table, rows)
        if not batch.num_rows:
            return 0
        same_key = " AND ".join(f"t.{_ident(k)} = b.{_ident(k)}" for k in self.primary_key(table))
        with self.transaction():
            self.con.register("_zoo_batch", batch)  # stays registered until the next batch replaces it
            self.con.execute(
                f"DELETE FROM {_ident(table)} t WHERE EXISTS (SELECT 1 FROM _zoo_batch b WHERE {same_key})"
            )
            self.con.execute(f"INSERT INTO {_ident(table)} BY NAME SELECT * FROM _zoo_batch")
        return batch.num_rows

    def replace_children(self, table: str, key: str, parents: Sequence[str], rows: Rows) -> int:
        """Make ``rows`` the only rows of ``table`` whose ``key`` is one of ``parents`` (e.g. an adapter's modules)."""
        batch = self.conform(table, rows)
        with self.transaction():
            if parents:
                self.con.execute(
                    f"DELETE FROM {_ident(table)} WHERE {_ident(key)} IN (SELECT unnest(?))", [list(parents)]
                )
            if batch.num_rows:
                self._insert(batch, table)
        return batch.num_rows

    def conform(self, table: str, rows: Rows) -> pa.Table:
        """``rows`` cast to ``table``'s column types, keeping only the columns they carry.

        Columns the rows leave out get the table's defaults on insert; JSON columns accept Python values.
        """
        schema = self.schema(table)
        if isinstance(rows, pa.Table):
            present = set(rows.column_names)
        else:
            present = set().union(*(row.keys() for row in rows)) if rows else set()
        unknown = present - set(schema.names)
        if unknown:
            raise KeyError(f"{table} has no column(s) {sorted(unknown)}")
        target = pa.schema([field for field in schema if field.name in present])
        if isinstance(rows, pa.Table):
            return rows.select(target.names).cast(target)
        json_columns = self._json_columns(table)
        return pa.Table.from_pylist([_encode_json(row, json_columns) for row in rows], schema=target)

    def _insert(self, batch: pa.Table, table: str) -> None:
        """Insert ``batch`` by column name; it stays registered as ``_zoo_batch`` until the next one."""
        self.con.register("_zoo_batch", batch)
        self.con.execute(f"INSERT INTO {_ident(table)} BY NAME SELECT * FROM _zoo_batch")

    def _json_columns(self, table: str) -> set[str]:
        rows = self.con.execute(named_query("json_columns"), {"table_name": table}).fetchall()
        return {name for (name,) in rows}

    def _checked(self, table: str) -> str:
        if table not in self.tables():
            raise KeyError(f"no table {table!r} in the catalog (tables: {', '.join(self.tables())})")
        return table


def writer_turn(path: Path) -> FileLock:
    """This process's turn at writing the catalog at ``path``, once it is its turn: another process writing it
    is waited for, however long (a first crawl of the whole hub takes hours), with one log line saying so.
    Shared by the threads of this process (DuckDB shares one open file between them)."""
    path = path.resolve()  # one lock object per file in this process, however the path was spelt
    turn = FileLock(path.with_name(f"{path.name}.lock"), thread_local=False, is_singleton=True)
    try:
        turn.acquire(timeout=0)
    except Timeout:
        log.info("another process is writing the catalog %s: waiting for it to finish", path)
        turn.acquire()
    return turn


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """A connection, retried while another process holds the file's DuckDB lock (a crawl or a recycle
    writing, or a reader); past ``wait_s`` the error says who holds it and what to do instead."""
    deadline, pause = time.monotonic() + wait_s, 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as err:
            if "lock" not in str(err) or time.monotonic() + pause > deadline:
                raise duckdb.IOException(f"{err}\nThe catalog was being written for {wait_s:.0f} s (a crawl or a "
                                         "recycle): try again later, or query a Parquet export "
                                         "(`zoo catalog export`).") from err
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _ident(name: str) -> str:
    """A quoted SQL identifier (names come from the schema, quoting guards the rest)."""
    return '"' + name.replace('"', '""') + '"'


def _encode_json(row: Mapping[str, Any], json_columns: set[str]) -> dict[str, Any]:
    """JSON columns are stored as canonical text (sorted keys), so equal values give equal bytes."""
    out = dict(row)
    for name in json_columns & out.keys():
        value = out[name]
        if value is not None and not isinstance(value, str):
            out[name] = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return out
