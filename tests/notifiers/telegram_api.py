"""A loopback aiohttp server that speaks enough of the Telegram Bot API for the notifier:
``POST /bot<token>/getMe`` and ``/bot<token>/sendMessage``, answering as Telegram does
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
"parameters"}``).

``answers`` is a queue of what the next sendMessage calls get (``ok``, ``flood``,
``blocked``, ``chat_not_found``, ``too_long``, ``error_500``, ``hang``, ``migrated``);
when it is empty every call succeeds. A wrong token gets 401 as from Telegram.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Ventanilla", "username": "ventanilla_bot"}

FAILURES: dict[str, tuple[int, dict[str, Any]]] = {
    "flood": (
        429,
        {
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        },
    ),
    "blocked": (403, {"description": "Forbidden: bot was blocked by the user"}),
    "chat_not_found": (400, {"description": "Bad Request: chat not found"}),
    "too_long": (400, {"description": "Bad Request: message is too long"}),
    "error_500": (500, {"description": "Internal Server Error"}),
    "migrated": (
        400,
        {
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1009876543210},
        },
    ),
}


@dataclass
class BotApi:
    token: str = TOKEN
    answers: list[str] = field(default_factory=list)
    received: list[dict[str, str]] = field(default_factory=list)  # sendMessage forms
    calls: list[str] = field(default_factory=list)  # every method called, in order
    next_id: int = 100
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends "hang"

    async def handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        self.calls.append(method)
        if token != self.token:
            return _failed(401, {"description": "Unauthorized"})
        form = {k: str(v) for k, v in (await request.post()).items()}
        if method == "getMe":
            return web.json_response({"ok": True, "result": BOT_USER})
        if method != "sendMessage":
            return _failed(404, {"description": "Not Found: method not found"})
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "hang":
            await self.release.wait()
        if answer in FAILURES:
            status, body = FAILURES[answer]
            return _failed(status, body)
        self.received.append(form)
        self.arrived.set()
        self.next_id += 1
        chat_id = int(form["chat_id"])
        message = {
            "message_id": self.next_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": BOT_USER,
            "text": form["text"],
        }
        return web.json_response({"ok": True, "result": message})


def _failed(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response({"ok": False, "error_code": status, **body}, status=status)


@asynccontextmanager
async def bot_api(api: BotApi | None = None) -> AsyncIterator[tuple[BotApi, str]]:
    """The fake Bot API on a free loopback port: (its state, its base URL)."""
    api = api or BotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield api, f"http://127.0.0.1:{server.port}"
    finally:
        api.release.set()
        await server.close()
