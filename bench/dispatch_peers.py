"""Loopback peers for the dispatch benchmark: an SMTP sink and a fake of Twilio's Messages API.

    .venv/bin/python bench/dispatch_peers.py smtp --port 8025 [--arrivals]
    .venv/bin/python bench/dispatch_peers.py twilio --port 8026

Each runs in a process of its own (on uvloop, as the daemon does), so that its CPU never
shares the event loop being measured. The SMTP sink (aiosmtpd) answers every message 250
and drops it; the Twilio fake (aiohttp) reads the form of ``POST
/2010-04-01/Accounts/{sid}/Messages.json`` and answers 201 with a message resource and a
fresh ``sid``, or 400 with Twilio's error shape when ``To`` or ``Body`` is missing. Both
print ``{"ready": port}`` once listening and ``{"received": n}`` on SIGTERM/SIGINT. With
``--arrivals`` the sink also prints one line per message as its DATA ends: ``{"t": <CLOCK_
MONOTONIC seconds, comparable across processes>, "to": [...], "subject": ...}``. Only the
dependencies the daemon itself installs are used (aiosmtpd, aiohttp, uvloop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
import time
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

import uvloop
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


def say(line: dict[str, object]) -> None:
    print(json.dumps(line, ensure_ascii=False), flush=True)


class SinkHandler:
    """aiosmtpd handler: every message accepted and dropped; its arrival told on request."""

    def __init__(self, arrivals: bool) -> None:
        self.arrivals = arrivals
        self.received = 0
        self._headers = BytesHeaderParser(policy=default_policy)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received += 1
        if self.arrivals:
            now = time.monotonic()
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
            subject = str(self._headers.parsebytes(raw).get("Subject", ""))
            say({"t": now, "to": list(envelope.rcpt_tos), "subject": subject})
        return f"250 2.0.0 OK: sink-{self.received}"


class FakeTwilio:
    """Twilio's Messages API as far as a successful send goes (see notifiers/sms_twilio.py)."""

    def __init__(self) -> None:
        self.received = 0

    async def messages(self, request: web.Request) -> web.Response:
        form = await request.post()
        to, body = form.get("To"), form.get("Body")
        if not isinstance(to, str) or not isinstance(body, str) or not to or not body:
            error = {
                "code": 21604,
                "message": "A 'To' and a 'Body' are required",
                "more_info": "https://www.twilio.com/docs/errors/21604",
                "status": 400,
            }
            return web.json_response(error, status=400)
        self.received += 1
        sid = "SM" + secrets.token_hex(16)
        resource = {
            "sid": sid,
            "account_sid": request.match_info["account"],
            "to": to,
            "from": form.get("From") or None,
            "messaging_service_sid": form.get("MessagingServiceSid") or None,
            "body": body,
            "status": "queued",
            "num_segments": "1",
            "api_version": "2010-04-01",
            "uri": f"{request.path.removesuffix('.json')}/{sid}.json",
        }
        return web.json_response(resource, status=201)


async def until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_smtp(port: int, arrivals: bool) -> None:
    handler = SinkHandler(arrivals)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="sink.localdomain"), HOST, port, reuse_address=True
    )
    say({"ready": port})
    async with server:
        await until_stopped()
    say({"received": handler.received})


async def serve_twilio(port: int) -> None:
    fake = FakeTwilio()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", fake.messages)
    # No access log: a line per request would cost the fake more than the request itself.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST, port, reuse_address=True).start()
    say({"ready": port})
    try:
        await until_stopped()
    finally:
        await runner.cleanup()
    say({"received": fake.received})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("peer", choices=("smtp", "twilio"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--arrivals", action="store_true", help="SMTP: a line per message")
    args = parser.parse_args(argv)
    if args.peer == "smtp":
        uvloop.run(serve_smtp(args.port, args.arrivals))
    else:
        uvloop.run(serve_twilio(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
