"""The daemon's part supervision: a part that ends on its own stops everything, with exit 1."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from config.daemon import Daemon, PartFailed
from tests.conftest import make_settings


async def test_a_failing_part_is_reported(tmp_path: Path) -> None:
    daemon = Daemon(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"))

    async def broken() -> None:
        raise RuntimeError("disk on fire")

    async def quits() -> None:
        return None

    with pytest.raises(PartFailed, match="imap failed: RuntimeError: disk on fire"):
        await daemon._part("imap", broken())
    with pytest.raises(PartFailed, match="stopped unexpectedly"):
        await daemon._part("telegram", quits())
    daemon.request_stop()
    await daemon._part("telegram", quits())  # ending after stop is normal


async def test_storage_failure_at_start_exits_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    with caplog.at_level(logging.ERROR):
        assert await asyncio.wait_for(Daemon(settings).run(), 30) == 1
    assert "cannot start" in caplog.text


async def test_tests_and_daemon_share_the_event_loop() -> None:
    """The suite runs on the loop ``serve`` runs on (config.event_loop), so the behaviour
    tested is the behaviour served."""
    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
