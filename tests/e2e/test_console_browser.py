"""The console in a real browser: Debian's Chromium driven by Playwright against
``ventanilla serve``, with mail delivered to a loopback SMTP sink that refuses the first
two messages.

One walk through what an operator does: sign in, filter the log to what was not sent,
save that selection in "Mis filtros" and use it again, open a message with "Ver", open the
customer's page in a new tab, and resend the selection, seen through the confirmation to
the job's end and the mail arriving. Screenshots at desktop (1280x800) and phone
(390x844) width are written under the test's tmp_path.

Chromium comes from Debian (``apt-get install chromium``; ``make test`` installs it as
root); Playwright never downloads a browser here. Without it the test skips and says why,
except under CI=true, where that fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_daemon import DaemonProcess, count_rows, form_body, free_port
from tests.notifiers.smtp_sink import smtp_sink

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "clave-de-prueba-1"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
NOT_SENT = "SELECT count(*) FROM notifications WHERE status <> 'sent'"
SETTLED = "SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending')"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium; make test does it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def console_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon on SQLite (started by the test, once the sink's port is known)."""
    port = free_port()
    env = {
        **os.environ,
        "VENTANILLA_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'console.db'}",
        "VENTANILLA_HTTP__PORT": str(port),
        "VENTANILLA_HTTP__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "0",
        "VENTANILLA_DAEMON__LOG_FORMAT": "json",
        "VENTANILLA_DISPATCH__POLL_SECONDS": "0.5",
    }
    env.pop("VENTANILLA_CONFIG", None)
    proc = DaemonProcess(env=env, port=port, log=tmp_path / "daemon.log")
    assert proc.cli("db", "upgrade").returncode == 0
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill(signal.SIGTERM)


def create_user(daemon: DaemonProcess) -> None:
    import subprocess

    from tests.e2e.test_daemon import BIN

    done = subprocess.run(
        [str(BIN), "users", "create", "operadora", "--role", "ops", "--password-stdin"],
        env=daemon.env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def wait_for(check: object, what: str, seconds: float = 30.0) -> None:
    for _ in range(int(seconds * 10)):
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def test_operator_walkthrough_in_chromium(
    console_daemon: DaemonProcess, chromium: Path, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    daemon = console_daemon
    db_url = daemon.env["VENTANILLA_DATABASE__URL"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with smtp_sink() as sink:
        sink.handler.answers = ["550 5.1.1 mailbox unavailable"] * 2
        daemon.env.update(
            VENTANILLA_NOTIFIERS__EMAIL__ENABLED="true",
            VENTANILLA_NOTIFIERS__EMAIL__PORT=str(sink.port),
        )
        await asyncio.to_thread(create_user, daemon)
        await asyncio.to_thread(daemon.start)
        # Customers write through the web form: each case acknowledged, its technician told.
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.post(
                    f"{daemon.base}/form",
                    json=form_body(str(uuid.uuid4())),
                    headers={"Accept": "application/json"},
                ) as resp:
                    assert resp.status == 201, await resp.text()
        await wait_for(lambda: count_rows(db_url, SETTLED) == 0, "the dispatcher")
        not_sent = await asyncio.to_thread(count_rows, db_url, NOT_SENT)
        assert not_sent == 2  # the two the sink refused
        total = await asyncio.to_thread(count_rows, db_url, "SELECT count(*) FROM notifications")

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(chromium))
            context = await browser.new_context(viewport=DESKTOP, locale="es-AR")
            page = await context.new_page()

            # Sign in: a page asked for without a session goes to the form and back.
            await page.goto(f"{daemon.base}/console/log")
            await expect(page).to_have_url(f"{daemon.base}/console/login?next=/console/log")
            await page.fill("#name", "operadora")
            await page.fill("#password", PASSWORD)
            await page.click("form[action='/console/login'] button")
            await expect(page).to_have_url(f"{daemon.base}/console/log")
            rows = page.locator("table.log-table tbody tr")
            await expect(rows).to_have_count(total)
            await page.screenshot(path=str(shots / "log-desktop.png"))

            # Filter to what was not sent and save the selection in one step.
            await page.select_option("#sent", "false")
            await page.check("#save")
            await page.fill("#save_name", "No enviados")
            await page.click("#filters button[type=submit]")
            await expect(page.locator(".notice.ok")).to_contain_text("No enviados")
            await expect(rows).to_have_count(not_sent)

            # Reuse it from "Mis filtros" after clearing the view.
            await page.goto(f"{daemon.base}/console/log")
            await expect(rows).to_have_count(total)
            await page.select_option("#mine", "No enviados")
            await expect(page).to_have_url(f"{daemon.base}/console/log?sent=false")
            await expect(rows).to_have_count(not_sent)
            await expect(page.locator("#sent")).to_have_value("false")

            # "Ver": the message as it was sent, with the provider's refusal.
            await rows.first.get_by_role("link", name="Ver").click()
            await expect(page.locator("h1")).to_contain_text("Mensaje")
            await expect(page.locator(".facts")).to_contain_text("mailbox unavailable")
            await expect(page.locator(".message-layout")).to_contain_text("Como se envió")
            await page.screenshot(path=str(shots / "message-desktop.png"))

            # The customer's name opens their page in a new tab.
            async with context.expect_page() as opened:
                await page.locator(".facts a[target=_blank]").click()
            customer = await opened.value
            await customer.wait_for_load_state()
            assert "/console/customers/" in customer.url
            await expect(customer.locator("h2").first).to_have_text("Historial")
            await customer.close()

            # Resend the selection: select all, confirm how many, follow the job.
            await page.goto(f"{daemon.base}/console/log?filter=No%20enviados")
            await page.check("[data-select-all]")
            await expect(page.locator("[data-selected-count]")).to_have_text(str(not_sent))
            await page.click("button[data-resend=selected]")
            dialog = page.locator("#resend-dialog")
            await expect(dialog).to_be_visible()
            await expect(dialog.locator("h2")).to_have_text(f"¿Reenviar {not_sent} mensajes?")
            await dialog.locator("[data-dialog-reason]").fill("buzón liberado")
            before = len(sink.handler.received)
            await dialog.locator("[data-dialog-confirm]").click()
            await expect(page).to_have_url(f"{daemon.base}/console/log/jobs/1")
            job = page.locator("[data-job]")
            await expect(job).to_have_attribute("data-job-state", "done", timeout=20_000)
            await expect(job.locator("[data-job-done]")).to_have_text(str(not_sent))
            await expect(job.locator("[data-job-queued]")).to_have_text(str(not_sent))
            await page.screenshot(path=str(shots / "job-desktop.png"))
            await wait_for(
                lambda: len(sink.handler.received) >= before + not_sent, "the resent mail"
            )
            manual = "SELECT count(*) FROM notifications WHERE trigger = 'manual'"
            assert await asyncio.to_thread(count_rows, db_url, manual) == not_sent

            # The same pages at phone width.
            await page.set_viewport_size(PHONE)
            await page.goto(f"{daemon.base}/console/log")
            await expect(rows).to_have_count(total + not_sent)
            await page.screenshot(path=str(shots / "log-phone.png"))
            await page.goto(f"{daemon.base}/console/log/1")
            await page.screenshot(path=str(shots / "message-phone.png"))
            await browser.close()
        await asyncio.to_thread(daemon.kill, signal.SIGTERM)

    for name in ("log-desktop", "message-desktop", "job-desktop", "log-phone", "message-phone"):
        shot = shots / f"{name}.png"
        assert shot.is_file() and shot.stat().st_size > 5_000, shot
