"""storage.bulk's SQLite path stores exactly what SQLAlchemy's own INSERT stores: the same
values, through the same column processors, with the same Python-side defaults, for every
table and default of the models; and a default only SQLAlchemy can compute (a SQL
expression, a callable that reads the execution context) sends the rows its own way."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    ColumnDefault,
    Engine,
    MetaData,
    Table,
    create_engine,
    insert,
    literal,
)
from sqlalchemy.types import TypeDecorator

from storage import bulk, migrate
from storage.models import Base, Case, Customer

NOW = datetime(2026, 11, 23, 18, 30, 5, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    path = tmp_path / "bulk.db"
    await migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite:///{path}")  # foreign keys off: rows stand alone here
    yield engine
    engine.dispose()


def stored(engine: Engine, table: Table) -> dict[str, Any]:
    """The table's newest row as SQLite holds it (typeof and value), read past SQLAlchemy
    (the migrations seed some tables)."""
    path = engine.url.database or ""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = [r[1] for r in conn.execute(f"PRAGMA table_info({table.name})")]
        picks = ", ".join(f'typeof("{n}"), "{n}"' for n in names)
        values = conn.execute(
            f"SELECT {picks} FROM {table.name} ORDER BY rowid DESC LIMIT 1"
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


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file, copied for each test that needs a pristine pair."""
    path = tmp_path_factory.mktemp("schema") / "schema.db"
    migrate.upgrade_sync(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def pair(schema: Path, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two empty databases: one written through storage.bulk, one through SQLAlchemy."""
    engines = []
    for name in ("ours.db", "theirs.db"):
        shutil.copy(schema, tmp_path / name)
        engines.append(create_engine(f"sqlite:///{tmp_path / name}"))
    yield engines[0], engines[1]
    for engine in engines:
        engine.dispose()


# --- cases derived from the models' metadata ---------------------------------------------

# A value of each Python type the models' columns take, chosen to exercise their processors.
VALUES: dict[type, Any] = {
    int: 7,
    str: "ñandú €",
    bool: True,
    datetime: NOW,
    object: {"asunto": "ñ", "n": [1, None]},  # JSON
    bytes: b"From: a@b\r\n\r\n\xff\x00",
    Decimal: Decimal("12.50"),
}


def row_for(table: Table, shape: str) -> dict[str, Any]:
    """``given``: a value for every column. ``defaults``: only for the columns that have
    neither a default nor NULL to fall back on (and ``id``, the key the ids come back by),
    so that every default of the table is used."""
    return {
        column.key: VALUES[python_type(column)]
        for column in table.columns
        if shape == "given"
        or column.key == "id"
        or not (column.nullable or column.default is not None or column.server_default)
    }


def python_type(column: Column[Any]) -> type:
    kind = column.type
    return (kind.impl_instance if isinstance(kind, TypeDecorator) else kind).python_type


def python_defaults(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if isinstance(c.default, ColumnDefault)]


TABLES = Base.metadata.sorted_tables
SHAPES = ("given", "defaults")


def table_id(value: object) -> str | None:
    return value.name if isinstance(value, Table) else None


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("table", TABLES, ids=table_id)
def test_prepared_insert_stores_what_sqlalchemy_stores(
    pair: tuple[Engine, Engine], table: Table, shape: str
) -> None:
    row = row_for(table, shape)
    with pair[0].begin() as conn:
        # The models' defaults are all computed on the prepared path: none of their
        # tables falls back to SQLAlchemy's slower one.
        assert bulk._prepared_for(conn, table, [row], ()) is not None
    assert_same_rows(pair, table, row)


def test_the_cases_cover_every_kind_of_default_the_models_use() -> None:
    kinds = {
        "callable" if c.default.is_callable else "scalar"  # type: ignore[union-attr]
        for table in TABLES
        for c in python_defaults(table)
    }
    assert kinds == {"callable", "scalar"}


def as_sql_expression(column: Column[Any]) -> Any:
    """The column's default value (taken once) as a SQL expression that gives it."""
    default: Any = column.default
    value = default.arg(None) if default.is_callable else default.arg
    return literal(value, column.type)


def reading_the_context(column: Column[Any]) -> Any:
    """The column's default as a callable that takes SQLAlchemy's execution context."""
    default: Any = column.default

    def value(context: Any) -> Any:
        context.get_current_parameters()  # what a context-sensitive default does
        return default.arg(context) if default.is_callable else default.arg

    return value


REWRITES = {"sql_expression": as_sql_expression, "reads_context": reading_the_context}


def rewritten(table: Table, rewrite: str) -> Table:
    """The same table with each Python-side default given the other way."""
    columns = [
        Column(
            c.name,
            c.type,
            primary_key=c.primary_key,
            nullable=c.nullable,
            default=REWRITES[rewrite](c) if isinstance(c.default, ColumnDefault) else None,
        )
        for c in table.columns
    ]
    return Table(table.name, MetaData(), *columns)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rewrite", REWRITES)
@pytest.mark.parametrize("table", [t for t in TABLES if python_defaults(t)], ids=table_id)
def test_defaults_only_sqlalchemy_can_compute_take_its_path(
    pair: tuple[Engine, Engine], table: Table, rewrite: str, shape: str
) -> None:
    variant = rewritten(table, rewrite)
    row = row_for(variant, shape)
    with pair[0].begin() as conn:
        prepared = bulk._prepared_for(conn, variant, [row], ())
    # Rows that give every column a value keep the prepared path: no default is used.
    assert (prepared is None) == (shape == "defaults")
    assert_same_rows(pair, variant, row, varying=set() if rewrite == "sql_expression" else None)


def assert_same_rows(
    pair: tuple[Engine, Engine],
    table: Table,
    row: dict[str, Any],
    varying: set[str] | None = None,
) -> None:
    """The row written through storage.bulk into the first database and through
    SQLAlchemy into the second is stored alike. ``varying``: the columns whose default may
    give a new value at each call (by default the ones left to a callable), whose stored
    form only can match."""
    ours, theirs = pair
    with ours.begin() as conn:
        if "id" in table.c:
            assert bulk.insert_returning_ids(conn, table, [row], "id") == [row["id"]]
        else:
            bulk.core_insert(conn, table, [row])
    with theirs.begin() as conn:
        conn.execute(insert(table), [row])
    if varying is None:
        varying = {
            c.key
            for c in python_defaults(table)
            if c.key not in row and c.default.is_callable  # type: ignore[union-attr]
        }
    mine, reference = stored(ours, table), stored(theirs, table)
    for name in mine:
        if name in varying:
            assert mine[name][0] == reference[name][0], name
            assert len(str(mine[name][1])) == len(str(reference[name][1])), name
        else:
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
