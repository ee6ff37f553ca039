"""Whole-daemon tests: ``ventanilla serve`` as a subprocess, spoken to only through sockets.

Covers the tour (form, API, CLI), a graceful SIGTERM, and the durability promise: 200
concurrent submissions with a SIGKILL in the middle; after a restart every submission that
was answered 2xx/303 is stored exactly once, and resubmitting any of them creates nothing new.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent / "ventanilla"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DaemonProcess:
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN), *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def start(self) -> None:
        self.starts += 1
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN), "serve"], env=self.env, stdout=handle, stderr=handle
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                import urllib.request

                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"daemon not ready in 30 s:\n{self.log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def count_rows(db_url: str, sql: str, **params: object) -> int:
    """Read the database directly with its own engine, never through the daemon."""

    async def run() -> int:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(db_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(sql), params)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def form_body(tag: str) -> dict[str, str]:
    return {
        "name": f"Cliente {tag}",
        "email": f"c-{tag}@example.com",
        "subject": f"Consulta {tag}",
        "description": "No tengo conexión desde la mañana. " * 5,
        "category": "Problema Grave",
        "submission_id": tag,
    }


async def post_form(session: aiohttp.ClientSession, base: str, tag: str) -> tuple[int, str | None]:
    async with session.post(
        f"{base}/form", json=form_body(tag), headers={"Accept": "application/json"}
    ) as resp:
        body = await resp.json(content_type=None)
        number = (body.get("case") or {}).get("number") if isinstance(body, dict) else None
        return resp.status, number


def test_tour_form_api_cli_and_graceful_stop(daemon: DaemonProcess, db_url: str) -> None:
    async def scenario() -> tuple[str, str, dict[str, object], dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{daemon.base}/form") as resp:
                assert resp.status == 200
                assert "Problema" in await resp.text()
            status, form_number = await post_form(session, daemon.base, str(uuid.uuid4()))
            assert status == 201 and form_number
            token = daemon.cli("token", "create", "--name", "crm", "--role", "intake")
            assert token.returncode == 0, token.stderr
            intake_token = next(w for w in token.stdout.split() if w.startswith("vt_"))
            async with session.post(
                f"{daemon.base}/api/v1/intake",
                json={
                    "sender": {"name": "Ana", "email": "ana@example.com"},
                    "subject": "Factura",
                    "text": "No me llegó la factura.",
                    "category": "Otro tipo de Problema",
                },
                headers={"Authorization": f"Bearer {intake_token}", "Idempotency-Key": "k-1"},
            ) as resp:
                assert resp.status == 201, await resp.text()
                api_number = (await resp.json())["case"]["number"]
            ops = daemon.cli("token", "create", "--name", "ops1", "--role", "ops")
            ops_token = next(w for w in ops.stdout.split() if w.startswith("vt_"))
            async with session.get(
                f"{daemon.base}/api/v1/cases", headers={"Authorization": f"Bearer {ops_token}"}
            ) as resp:
                assert resp.status == 200
                listing = await resp.json()
            async with session.get(f"{daemon.base}/metrics") as resp:
                metrics = await resp.text()
            async with session.get(f"{daemon.base}/readyz") as resp:
                writer = (await resp.json())["checks"]["write_path"]
            assert (
                'ventanilla_inbound_messages_total{channel="web",outcome="accepted"} 1.0' in metrics
            )
            return form_number, api_number, listing, writer

    form_number, api_number, listing, writer = asyncio.run(scenario())
    child = None
    if db_url.startswith("sqlite"):  # SQLite: the batches were committed by the writer process
        child = writer["process"]["pid"]
        assert writer["process"]["alive"] and child != daemon.proc.pid  # type: ignore[union-attr]
    numbers = {item["number"] for item in listing["items"]}  # type: ignore[index, union-attr]
    assert numbers == {form_number, api_number}
    shown = daemon.cli("cases", "show", form_number)
    assert shown.returncode == 0 and form_number in shown.stdout and "Técnica" in shown.stdout
    listed = daemon.cli("cases", "list")
    assert form_number in listed.stdout and api_number in listed.stdout
    assert daemon.kill(signal.SIGTERM) == 0
    assert '"stopped"' in daemon.log.read_text()
    if child is not None:  # and it went away with the daemon
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


def test_sigkill_mid_load_loses_nothing_and_duplicates_nothing(
    daemon: DaemonProcess, db_url: str
) -> None:
    tags = [str(uuid.uuid4()) for _ in range(200)]
    answered: dict[str, str] = {}

    async def load() -> None:
        connector = aiohttp.TCPConnector(limit=64)
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(tag: str) -> None:
                try:
                    status, number = await post_form(session, daemon.base, tag)
                except (TimeoutError, aiohttp.ClientError, ValueError):
                    return  # not acknowledged: the client would retry
                if 200 <= status < 300 and number:
                    answered[tag] = number
                    if len(answered) == 60 and daemon.proc and daemon.proc.poll() is None:
                        daemon.proc.send_signal(signal.SIGKILL)

            await asyncio.gather(*(one(tag) for tag in tags))

    asyncio.run(load())
    assert daemon.proc is not None and daemon.proc.wait(timeout=30) == -signal.SIGKILL
    assert 60 <= len(answered) < 200, "the kill must land in the middle of the load"

    # Every acknowledged submission is stored exactly once, with the number it was told.
    for tag, number in answered.items():
        assert (
            count_rows(
                db_url,
                "SELECT count(*) FROM inbound i JOIN cases c ON c.id = i.case_id "
                "WHERE i.external_id = :ext AND c.number = :num",
                ext=f"web:{tag}",
                num=number,
            )
            == 1
        ), tag

    # After a restart, clients retry everything: nothing is created twice.
    daemon.start()

    async def retry_all() -> dict[str, tuple[int, str | None]]:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(*(post_form(session, daemon.base, t) for t in tags))
        return dict(zip(tags, results, strict=True))

    retried = asyncio.run(retry_all())
    for tag, (status, number) in retried.items():
        assert status in (200, 201), (tag, status)
        if tag in answered:
            assert status == 200 and number == answered[tag]
    assert count_rows(db_url, "SELECT count(*) FROM inbound") == 200
    assert count_rows(db_url, "SELECT count(*) FROM cases") == 200
    assert count_rows(db_url, "SELECT count(DISTINCT number) FROM cases") == 200
    assert daemon.kill(signal.SIGTERM) == 0
