"""The Telegram intake in the whole daemon, polling the loopback Bot API: killed with -9
while updates wait, restarted, every update stored exactly once and confirmed; a rejected
token leaves the daemon serving with /readyz naming the stopped part."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request

import aiohttp
import pytest

from tests.e2e.test_daemon import BIN, DaemonProcess
from tests.e2e.test_dispatch_crash import query
from tests.telegram.bot_api import ANA, TOKEN, fake_bot_api

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def telegram_env(daemon: DaemonProcess, url: str) -> None:
    daemon.env.update(
        VENTANILLA_TELEGRAM__ENABLED="true",
        VENTANILLA_TELEGRAM__TOKEN=TOKEN,
        VENTANILLA_TELEGRAM__API_BASE_URL=url,
        VENTANILLA_TELEGRAM__POLL_TIMEOUT_SECONDS="1",
    )


def serve_unready(daemon: DaemonProcess) -> subprocess.Popen[bytes]:
    """``ventanilla serve`` without waiting for /readyz (it will not be ready)."""
    with daemon.log.open("ab") as handle:
        return subprocess.Popen([str(BIN), "serve"], env=daemon.env, stdout=handle, stderr=handle)


def readyz(daemon: DaemonProcess) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{daemon.base}/readyz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_kill_9_with_updates_waiting_loses_none_and_stores_none_twice(
    daemon: DaemonProcess, db_url: str
) -> None:
    async with fake_bot_api() as (api, url):
        api.max_batch, api.serve_delay = 5, 0.3
        for n in range(40):
            api.text(f"Consulta {n}", user={**ANA, "id": 7_000_000 + n % 8})
        last = api.pending[-1]["update_id"]
        daemon.kill(signal.SIGTERM)
        telegram_env(daemon, url)
        await asyncio.to_thread(daemon.start)
        for _ in range(600):  # some batches stored, others still waiting
            if (api.confirmed or 0) >= last - 25:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(daemon.kill, signal.SIGKILL)
        assert api.pending, "updates must still be waiting when the daemon dies"
        await asyncio.to_thread(daemon.start)
        for _ in range(600):
            if not api.pending:
                break
            await asyncio.sleep(0.05)
        status, body = await asyncio.to_thread(readyz, daemon)
        assert await asyncio.to_thread(daemon.kill, signal.SIGTERM) == 0
    assert status == 200, body
    rows = await query(db_url, "SELECT external_id FROM inbound WHERE channel = 'telegram'")
    assert len(rows) == 40 and len(set(rows)) == 40
    assert api.confirmed == last + 1  # confirmed at the graceful stop


async def test_a_rejected_token_stops_only_the_telegram_part(
    daemon: DaemonProcess, db_url: str
) -> None:
    async with fake_bot_api() as (api, url):
        api.token = "1:another-bot"
        daemon.kill(signal.SIGTERM)
        telegram_env(daemon, url)
        daemon.proc = await asyncio.to_thread(serve_unready, daemon)
        deadline = time.monotonic() + 30
        body: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                status, body = await asyncio.to_thread(readyz, daemon)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            checks = body.get("checks")
            if isinstance(checks, dict) and checks.get("telegram", {}).get("state") == "stopped":
                break
            await asyncio.sleep(0.2)
        assert status == 503, body
        assert daemon.proc.poll() is None  # still serving
        assert await asyncio.to_thread(daemon.kill, signal.SIGTERM) == 0
    log = daemon.log.read_text()
    # One line from the intake (the outbound notifier says its own at start).
    assert log.count("the Telegram intake is stopped until the token is fixed") == 1
    assert TOKEN not in log


async def test_webhook_mode_sets_the_webhook_and_stores_before_answering(
    daemon: DaemonProcess, db_url: str
) -> None:
    async with fake_bot_api() as (api, url):
        daemon.kill(signal.SIGTERM)
        telegram_env(daemon, url)
        daemon.env.update(
            VENTANILLA_TELEGRAM__MODE="webhook", VENTANILLA_TELEGRAM__WEBHOOK_SECRET="e2e-secret"
        )
        await asyncio.to_thread(daemon.start)  # ready: the webhook is set
        update = api.text("Hola desde el webhook")
        api.pending.clear()  # Telegram POSTs it instead
        async with aiohttp.ClientSession() as session:
            hook = f"{daemon.base}/webhooks/telegram"
            headers = {"X-Telegram-Bot-Api-Secret-Token": "e2e-secret"}
            async with session.post(
                hook, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
            ) as resp:
                refused = resp.status
            async with session.post(hook, json=update, headers=headers) as resp:
                taken = resp.status
            rows = await query(db_url, "SELECT external_id FROM inbound WHERE channel = 'telegram'")
        status, body = await asyncio.to_thread(readyz, daemon)
        assert await asyncio.to_thread(daemon.kill, signal.SIGTERM) == 0
    assert (refused, taken, status) == (403, 200, 200) and len(rows) == 1
    assert api.webhook_url == f"{daemon.base}/webhooks/telegram"
    checks = body["checks"]
    assert isinstance(checks, dict) and checks["telegram"]["webhook"]["url"] == api.webhook_url
