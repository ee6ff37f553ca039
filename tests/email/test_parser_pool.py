"""The parser processes: mail parsed in a pool survives a terminal's Ctrl-C to the group."""

from __future__ import annotations

import asyncio
import os
import signal

from config.app import Services
from intake.email.parse import ParsedEmail

MAIL = (
    b"From: Ana <ana@example.com>\r\nSubject: Hola\r\nMessage-ID: <p1@example.com>\r\n\r\nTexto\r\n"
)


async def test_parser_processes_ignore_interrupts_until_the_pool_shuts_down(
    services: Services,
) -> None:
    services.start_parser_pool()
    assert services.parser_pool is not None
    first = await services.email.prepare_one(MAIL)
    assert isinstance(first[0], ParsedEmail)
    pids = list(services.parser_pool._processes)  # the workers started so far
    assert pids and os.getpid() not in pids
    for pid in pids:
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.2)
    again = await services.email.prepare_one(MAIL.replace(b"p1@", b"p2@"))
    assert isinstance(again[0], ParsedEmail) and again[0].message_id == "p2@example.com"
    assert set(services.parser_pool._processes) >= set(pids)  # the same workers, still alive
