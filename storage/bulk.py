"""Multi-row inserts on the Core path, with generated ids tied back to their rows.

``sort_by_parameter_order`` would make SQLAlchemy send one INSERT per row on SQLite (whose
RETURNING order is unspecified, https://sqlite.org/lang_returning.html). Instead each
table's rows carry a unique key (case number, channel + external id, a customer's ref),
RETURNING gives it back with the id, and the ids are matched to the rows by that key: one
statement per table per batch on both engines.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection


@functools.cache
def _insert(table: Table, *returning: str) -> Any:
    # Built once per table: constructing the statement and its cache key again for every
    # batch cost more than executing it for small batches.
    if not returning:
        return insert(table)
    return insert(table).returning(table.c.id, *(table.c[name] for name in returning))


def core_insert(conn: Connection, table: Table | Any, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany on the Core path (no ORM bulk bookkeeping)."""
    if rows:
        conn.execute(_insert(table), list(rows))


def insert_returning_ids(
    conn: Connection, table: Table | Any, rows: Sequence[dict[str, Any]], *key: str
) -> list[int]:
    """Insert ``rows``; return their ids in the order of ``rows``, matched on ``key``."""
    if not rows:
        return []
    result = conn.execute(_insert(table, *key), list(rows))
    by_key = {tuple(row[1:]): row[0] for row in result}
    return [by_key[tuple(r[name] for name in key)] for r in rows]
