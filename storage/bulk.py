"""Multi-row inserts on the Core path, with generated ids tied back to their rows.

``sort_by_parameter_order`` would make SQLAlchemy send one INSERT per row on SQLite (whose
RETURNING order is unspecified, https://sqlite.org/lang_returning.html). Instead each
table's rows carry a unique key (case number, channel + external id, a customer's ref),
RETURNING gives it back with the id, and the ids are matched to the rows by that key: one
statement per table per batch on both engines.

On SQLite the statement for a table and a set of row keys is compiled once
(``PreparedInsert``) and run with ``exec_driver_sql``: the columns' own bind processors
and Python-side defaults are applied here, the way SQLAlchemy applies them, without its
per-execution work of finding the compiled form, building each row's parameters through
the compiler and, for RETURNING, writing the multi-row VALUES again (replayed SMTP
batches: a tenth of the writer's CPU). PostgreSQL keeps SQLAlchemy's own path, whose
insertmanyvalues numbers the parameters the way asyncpg wants them.

Only defaults whose value can be computed here exactly as SQLAlchemy computes it are taken
on the prepared path: plain values and callables that take no argument. A row set that
leaves to the table a column whose default is a SQL expression (rendered into the
statement), a callable that reads the execution context, a sequence or anything newer
takes SQLAlchemy's own path for that table, slower but right.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, ColumnDefault, Table, insert
from sqlalchemy.engine import Connection, Dialect

# (column key, a callable taking no argument or None, the value when there is no callable)
Default = tuple[str, Callable[[Any], Any] | None, Any]


@functools.cache
def _insert(table: Table, *returning: str) -> Any:
    # Built once per table: constructing the statement and its cache key again for every
    # batch cost more than executing it for small batches.
    if not returning:
        return insert(table)
    return insert(table).returning(table.c.id, *(table.c[name] for name in returning))


class PreparedInsert:
    """One table's INSERT for one set of row keys on one dialect with positional
    parameters (SQLite's ``?``), compiled once."""

    def __init__(
        self,
        table: Table,
        keys: tuple[str, ...],
        returning: tuple[str, ...],
        dialect: Dialect,
        defaults: tuple[Default, ...],
    ) -> None:
        # Columns the rows leave out but that have a Python-side default get it here, as
        # SQLAlchemy would give it (server-side defaults are the database's business).
        self.defaults = defaults
        compiled = _insert(table, *returning).compile(
            dialect=dialect, column_keys=[*keys, *(key for key, _, _ in defaults)]
        )
        self.columns: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        ]
        # Rows per statement as SQLAlchemy's insertmanyvalues pages them, within the
        # dialect's limit on the parameters of one statement.
        self.page = max(
            1,
            min(
                dialect.insertmanyvalues_page_size,
                dialect.insertmanyvalues_max_parameters // max(1, len(self.columns)),
            ),
        )
        self.sql = str(compiled)
        # "INSERT INTO t (a, b) VALUES (?, ?) RETURNING id, k": the VALUES group repeats
        # once per row, for one statement per batch; positional "?" need no renumbering.
        head, values = self.sql.split(" VALUES ", 1)
        group, returns, tail = values.partition(" RETURNING ")
        self._head, self._group, self._tail = head + " VALUES ", group, returns + tail

    def parameters(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Each row's values in the statement's order, through the columns' processors."""
        done: list[tuple[Any, ...]] = []
        for row in rows:
            if self.defaults:
                row = dict(row)
                for key, call, value in self.defaults:
                    row[key] = value if call is None else call(None)
            done.append(
                tuple(
                    row[name] if process is None else process(row[name])
                    for name, process in self.columns
                )
            )
        return done

    def for_rows(self, count: int) -> str:
        """The statement with ``count`` VALUES groups."""
        return self._head + ", ".join([self._group] * count) + self._tail


@functools.cache
def _wrappers() -> frozenset[Any]:
    """The code of the wrappers SQLAlchemy puts around a default callable that takes no
    argument, so that it can be called like one that takes the execution context (a plain
    function, and a builtin or other callable whose signature cannot be read)."""
    return frozenset(
        getattr(ColumnDefault(probe).arg, "__code__", None) for probe in (lambda: None, list)
    ) - {None}


def _computable(column: Column[Any]) -> Default | None:
    """How to compute ``column``'s default here as SQLAlchemy would, or None when only
    SQLAlchemy's own execution can: the default's value depends on the statement or its
    execution context, or is of a kind this module does not know."""
    default = column.default
    if isinstance(default, ColumnDefault):
        if default.is_scalar:
            return column.key, None, default.arg
        # A callable that reads the context (``ctx.get_current_parameters()``) would get
        # None here and fail, or worse, give a different value: only SQLAlchemy's own
        # wrapper of a callable without arguments ignores the context it is given.
        if default.is_callable and getattr(default.arg, "__code__", None) in _wrappers():
            return column.key, default.arg, None
    return None


@functools.cache
def _prepared(
    table: Table, keys: tuple[str, ...], returning: tuple[str, ...], dialect: Dialect
) -> PreparedInsert | None:
    """The statement for rows with these keys, or None when a column they leave out has
    a default that only SQLAlchemy can compute."""
    defaults: list[Default] = []
    for column in table.columns:
        if column.key in keys or column.default is None:
            continue
        computed = _computable(column)
        if computed is None:
            return None
        defaults.append(computed)
    return PreparedInsert(table, keys, returning, dialect, tuple(defaults))


def _prepared_for(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: tuple[str, ...]
) -> PreparedInsert | None:
    """The compiled statement for these rows' keys, or None for SQLAlchemy's own path: off
    SQLite (positional ``?`` parameters only), or when the rows leave a column to a default
    only SQLAlchemy can compute (see ``_computable``)."""
    if conn.dialect.paramstyle != "qmark":
        return None
    return _prepared(table, tuple(rows[0]), returning, conn.dialect)


def core_insert(conn: Connection, table: Table | Any, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany on the Core path (no ORM bulk bookkeeping)."""
    if not rows:
        return
    prepared = _prepared_for(conn, table, rows, ())
    if prepared is None:
        conn.execute(_insert(table), list(rows))
    else:
        conn.exec_driver_sql(prepared.sql, prepared.parameters(rows))


def insert_returning_ids(
    conn: Connection, table: Table | Any, rows: Sequence[dict[str, Any]], *key: str
) -> list[int]:
    """Insert ``rows``; return their ids in the order of ``rows``, matched on ``key``."""
    if not rows:
        return []
    prepared = _prepared_for(conn, table, rows, key)
    if prepared is None:
        by_key = {tuple(row[1:]): row[0] for row in conn.execute(_insert(table, *key), list(rows))}
    else:
        by_key = {}
        values = prepared.parameters(rows)
        for start in range(0, len(values), prepared.page):
            chunk = values[start : start + prepared.page]
            flat = tuple(value for row in chunk for value in row)
            result = conn.exec_driver_sql(prepared.for_rows(len(chunk)), flat)
            by_key.update((tuple(row[1:]), row[0]) for row in result)
    return [by_key[tuple(r[name] for name in key)] for r in rows]
