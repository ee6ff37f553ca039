"""Shared fixtures: settings, a database on SQLite and PostgreSQL, running services, a client.

Every async test runs on the daemon's own event loop, uvloop's (config.event_loop).

PostgreSQL tests use the server at 127.0.0.1:5432 (user postgres, trust auth), creating and
dropping their own database. Where it is not running they skip with the reason, unless
VENTANILLA_REQUIRE_POSTGRES=1, where a missing server fails the run.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from cases.catalog_edit import BUMP_VERSION
from cases.intake_batch import IntakeBatch
from cases.operations import AcceptMessage
from config import event_loop
from config.app import Services, build_http_app, open_services
from config.settings import DEFAULT_CONFIG, Settings, load_settings
from storage import migrate
from storage.auth import create_token
from storage.models import Status


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The loop the daemon runs on (pytest-asyncio's hook; one factory keeps test names)."""
    return {"uvloop": event_loop.new_event_loop}


PG_ADMIN_DSN = os.environ.get("VENTANILLA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("VENTANILLA_REQUIRE_POSTGRES") == "1"


def _pg_available() -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
        return None
    except Exception as exc:  # any failure means "not here"
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {exc}"


@pytest.fixture(scope="session")
def pg_unavailable_reason() -> str | None:
    return _pg_available()


@pytest.fixture
def pg_url(pg_unavailable_reason: str | None) -> Iterator[str]:
    """A fresh, migrated-on-demand PostgreSQL database for one test, dropped afterwards."""
    if pg_unavailable_reason:
        if REQUIRE_PG:
            pytest.fail(f"VENTANILLA_REQUIRE_POSTGRES=1 but {pg_unavailable_reason}")
        pytest.skip(pg_unavailable_reason)
    name = f"ventanilla_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrizes a test over both engines."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ventanilla.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def make_settings(tmp_path: Path, db_url: str, **env: str) -> Settings:
    environ = {
        "VENTANILLA_DATABASE__URL": db_url,
        "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "0",
        **env,
    }
    return load_settings(DEFAULT_CONFIG, environ)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


# Tests that run the write path as the daemon does (on SQLite, in the writer process);
# the rest write in a thread so that they can reach into the executors.
DAEMON_WRITER_PATHS = (
    "tests/storage/",
    "tests/console/",
    "tests/cases/",
    "tests/test_cli_",
    "tests/intake/test_api_intake.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if where.startswith(DAEMON_WRITER_PATHS):
            item.add_marker("writer_process")


@pytest.fixture
async def services(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Services]:
    """Migrated database, seeded catalog, and the write path running (on SQLite in the
    writer process for tests marked ``writer_process``)."""
    if not settings.database.is_sqlite:
        await migrate.upgrade(settings.database.url)
    svc = await open_services(settings)
    if request.node.get_closest_marker("writer_process") is not None:
        try:
            await svc.start_writer_process()
        except BaseException:
            await svc.close()
            raise
    task = asyncio.create_task(svc.writes.run())
    await svc.writes.wait_started()
    try:
        yield svc
    finally:
        await svc.writes.close()
        await task
        await svc.close()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[TestClient[object, object]]:
    app = build_http_app(services)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def intake_batch(services: Services) -> IntakeBatch:
    """The in-thread intake executor, for tests that reach into it."""
    executor = services.runner.executors[AcceptMessage]
    assert isinstance(executor, IntakeBatch)
    return executor


@asynccontextmanager
async def broken_routing(services: Services) -> AsyncIterator[None]:
    """The catalog without a default status while inside: routing fails for every new
    case, in whichever process the writer runs (it sees the catalog version move)."""
    async with services.db.session() as session, session.begin():
        default = await session.scalar(select(Status.id).where(Status.is_default.is_(True)))
        await session.execute(update(Status).values(is_default=False))
        await session.execute(BUMP_VERSION)
    try:
        yield
    finally:
        async with services.db.session() as session, session.begin():
            await session.execute(
                update(Status).where(Status.id == default).values(is_default=True)
            )
            await session.execute(BUMP_VERSION)


TokenFactory = Callable[[str], Awaitable[str]]


@pytest.fixture
def make_token(services: Services) -> TokenFactory:
    async def factory(role: str) -> str:
        async with services.db.session() as session, session.begin():
            return await create_token(session, f"test-{role}-{uuid.uuid4().hex[:6]}", role)

    return factory
