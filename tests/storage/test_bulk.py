"""storage.bulk's SQLite path stores exactly what SQLAlchemy's own INSERT stores: the same
values, through the same column processors, with the same Python-side defaults."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, create_engine, insert

from storage import bulk, migrate
from storage.models import Case, CaseEvent, Customer, Inbound, Message, Notification

NOW = datetime(2026, 11, 23, 18, 30, 5, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    path = tmp_path / "bulk.db"
    await migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")  # foreign keys off: rows stand alone here
    yield engine
    engine.dispose()


def stored(engine: Engine, table: Table, row_id: int) -> dict[str, Any]:
    """The row as SQLite holds it (typeof and value), read past SQLAlchemy."""
    path = engine.url.database or ""
    with sqlite3.connect(path) as conn:
        names = [r[1] for r in conn.execute(f"PRAGMA table_info({table.name})")]
        picks = ", ".join(f"typeof({n}), {n}" for n in names)
        values = conn.execute(
            f"SELECT {picks} FROM {table.name} WHERE id = ?", (row_id,)
        ).fetchone()
    return {n: (values[2 * i], values[2 * i + 1]) for i, n in enumerate(names)}


CASE = {
    "title": "Sin conexión",
    "description": "Desde ayer no hay servicio",
    "status_id": 1,
    "priority_id": 2,
    "severity_id": 3,
    "category_id": None,
    "subreason": None,
    "area_id": 4,
    "assignee_id": None,
    "customer_id": 5,
    "contact": "ana@example.com",
    "origin_channel": "email",
    "language": "es",
    "tags": ["fibra", "urgente"],
    "cc": [],
    "is_public": True,
    "created_at": NOW,
    "updated_at": NOW,
    "parent_id": None,
}
# What the batch writer gives, and a row that leaves the defaults to the table.
ROWS: list[tuple[Table, str, dict[str, Any]]] = [
    (Case.__table__, "number", CASE),
    (
        Case.__table__,
        "number",
        {
            "title": "t",
            "status_id": 1,
            "priority_id": 1,
            "severity_id": 1,
            "customer_id": 1,
            "origin_channel": "web",
        },
    ),
    (Customer.__table__, "ref", {"name": "Ana", "created_at": NOW, "updated_at": NOW}),
    (
        Inbound.__table__,
        "external_id",
        {
            "channel": "email",
            "received_at": NOW,
            "status": "failed",
            "error": "routing: x",
            "raw": b"From: a@b\r\n\r\n\xff",
            "normalized": {"subject": "ñ", "n": [1, None]},
            "case_id": None,
            "retries": 0,
        },
    ),
    (
        Message.__table__,
        "external_id",
        {
            "case_id": 1,
            "inbound_id": 2,
            "direction": "in",
            "channel": "email",
            "sender": "Ana <ana@example.com>",
            "subject": "Re: x",
            "text": "hola",
            "html": None,
            "auto_submitted": False,
            "created_at": NOW,
        },
    ),
    (
        CaseEvent.__table__,
        "kind",
        {
            "case_id": 1,
            "detail": {"reasons": ["área por categoría"]},
            "actor": "system",
            "created_at": NOW,
        },
    ),
    (
        Notification.__table__,
        "message_id",
        {
            "channel": "email",
            "trigger": "auto",
            "template": "ack_new_case",
            "language": "es",
            "recipient": "ana@example.com",
            "subject": "Caso CAS-1",
            "body": "Hola",
            "case_id": 1,
            "customer_id": 1,
            "status": "pending",
            "attempts": 0,
            "created_at": NOW,
            "next_attempt_at": NOW,
        },
    ),
]


@pytest.mark.parametrize(("table", "key", "row"), ROWS, ids=lambda x: getattr(x, "name", None))
def test_prepared_insert_stores_what_sqlalchemy_stores(
    engine: Engine, table: Table, key: str, row: dict[str, Any]
) -> None:
    ours, theirs = {**row, key: "ours"}, {**row, key: "theirs"}
    with engine.begin() as conn:
        [our_id] = bulk.insert_returning_ids(conn, table, [ours], key)
        their_id = conn.execute(insert(table).returning(table.c.id), [theirs]).scalar_one()
    mine, reference = stored(engine, table, our_id), stored(engine, table, their_id)
    for name in mine:
        if name in ("id", key):
            continue
        if name in ("created_at", "updated_at", "received_at") and name not in row:
            # A default of "now": taken at each insert, so only its form can match.
            assert mine[name][0] == reference[name][0] == "text"
            assert len(mine[name][1]) == len(reference[name][1])
            continue
        assert mine[name] == reference[name], name


def test_ids_come_back_in_row_order_across_statements(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"name": f"n{i}", "ref": f"r{i:03d}", "created_at": NOW} for i in range(25)]
    with engine.begin() as conn:
        # Few parameters per statement: the 25 rows take several INSERTs.
        monkeypatch.setattr(conn.dialect, "insertmanyvalues_max_parameters", 12)
        ids = bulk.insert_returning_ids(conn, Customer.__table__, rows[::-1], "ref")
        found = dict(conn.exec_driver_sql("SELECT id, ref FROM customers").all())
    assert len(set(ids)) == 25
    assert [found[i] for i in ids] == [r["ref"] for r in rows[::-1]]


def test_executemany_rows_match_too(engine: Engine) -> None:
    rows = [{**CASE, "number": f"CAS-{i}", "tags": [i]} for i in range(3)]
    with engine.begin() as conn:
        bulk.core_insert(conn, Case.__table__, rows)
        stored_tags = conn.exec_driver_sql("SELECT number, tags FROM cases ORDER BY id").all()
    assert stored_tags == [(f"CAS-{i}", f"[{i}]") for i in range(3)]
