"""The SMTP benchmark's ceiling: a bare aiosmtpd server that answers 250 and discards the mail.

    .venv/bin/python bench/ceiling_smtp.py --port 8026 [--host 127.0.0.1]

It does what any SMTP server must (greeting, EHLO, MAIL, RCPT, DATA with dot-unstuffing,
SIZE limit) and nothing else, so the daemon's rate as a fraction of this one's is what its
own work (parsing, storing, committing before the 250) costs. Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session


class DiscardHandler:
    """aiosmtpd handler: every recipient accepted, every message dropped after DATA."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 OK: discarded"


async def serve(host: str, port: int, max_bytes: int) -> None:
    loop = asyncio.get_running_loop()
    handler = DiscardHandler()
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=max_bytes, hostname="ceiling.localdomain"),
        host,
        port,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ceiling SMTP server on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-bytes", type=int, default=26_214_400, help="SIZE limit")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.max_bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
