"""A loopback Bot API for the Telegram intake, built on the notifier's fake
(``tests.notifiers.telegram_api``: getMe, sendMessage and its failures) and adding what
receiving needs:

- ``getUpdates`` serving the queued updates as Telegram does: an update stays until a call
  whose ``offset`` is above its ``update_id`` confirms it, and a call with nothing to give
  waits up to its ``timeout`` for a new one;
- ``getFile`` and the file download (``GET /file/bot<token>/<file_path>``);
- ``setWebhook``, ``deleteWebhook`` and ``getWebhookInfo``, recorded.

``updates`` (the builders below) make real Update shapes: text, photo, document, voice,
location, contact, an edited message, a group message, ``/start``. ``failures`` queues
answers per method (``flood_1``: 429 with retry_after 1, ``unauthorized``, ``error_500``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.notifiers.telegram_api import FAILURES, TOKEN, BotApi, _failed

MORE_FAILURES: dict[str, tuple[int, dict[str, Any]]] = {
    **FAILURES,
    "flood_1": (
        429,
        {"description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}},
    ),
    "unauthorized": (401, {"description": "Unauthorized"}),
    "conflict": (409, {"description": "Conflict: terminated by other getUpdates request"}),
}

ANA = {
    "id": 5550001,
    "is_bot": False,
    "first_name": "Ana",
    "last_name": "Pérez",
    "username": "anaperez",
    "language_code": "es-AR",
}
JOHN = {"id": 5550002, "is_bot": False, "first_name": "John", "language_code": "en"}
ROBOT = {"id": 5550003, "is_bot": True, "first_name": "Eco", "username": "eco_bot"}
GROUP = {"id": -1001234567890, "title": "Vecinos del barrio", "type": "supergroup"}


@dataclass
class FakeBotApi(BotApi):
    pending: list[dict[str, Any]] = field(default_factory=list)  # served until confirmed
    files: dict[str, bytes] = field(default_factory=dict)  # file_id → content
    failures: dict[str, list[str]] = field(default_factory=dict)  # method → answers
    offsets: list[int | None] = field(default_factory=list)  # every getUpdates offset
    forms: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # method → forms
    downloads: list[str] = field(default_factory=list)  # file paths fetched
    max_batch: int = 100  # at most this many updates a call (limit permitting)
    serve_delay: float = 0.0  # seconds each getUpdates answer takes (a slow network)
    webhook_url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(700_000_001))
    _messages: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    # --- what Telegram would send ---------------------------------------------------------

    def push(self, kind: str, message: dict[str, Any]) -> dict[str, Any]:
        """Queue an update carrying ``message`` under ``kind`` (message, edited_message)."""
        update = {"update_id": next(self._ids), kind: message}
        self.pending.append(update)
        self._new.set()
        return update

    def message(
        self,
        user: dict[str, Any] = ANA,
        chat: dict[str, Any] | None = None,
        message_id: int | None = None,
        **content: Any,
    ) -> dict[str, Any]:
        """A message of ``user`` in their private chat (or ``chat``)."""
        if chat is None:
            chat = {k: v for k, v in user.items() if k in ("id", "first_name", "last_name",
                                                           "username")}  # fmt: skip
            chat["type"] = "private"
        return {
            "message_id": message_id if message_id is not None else next(self._messages),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            **content,
        }

    def text(self, text: str, user: dict[str, Any] = ANA, **extra: Any) -> dict[str, Any]:
        return self.push("message", self.message(user, text=text, **extra))

    def command(self, text: str = "/start", user: dict[str, Any] = ANA) -> dict[str, Any]:
        name = text.split()[0]
        entity = {"offset": 0, "length": len(name), "type": "bot_command"}
        return self.push("message", self.message(user, text=text, entities=[entity]))

    def add_file(self, content: bytes) -> tuple[str, str]:
        """Serve ``content``; its (file_id, file_unique_id)."""
        unique = hashlib.sha256(content).hexdigest()[:16]
        file_id = f"AgAC{unique}"
        self.files[file_id] = content
        return file_id, unique

    def photo(
        self, content: bytes, caption: str = "", user: dict[str, Any] = ANA
    ) -> dict[str, Any]:
        small_id, small_unique = self.add_file(content[: max(1, len(content) // 10)])
        big_id, big_unique = self.add_file(content)
        sizes = [
            {"file_id": small_id, "file_unique_id": small_unique, "file_size": len(content) // 10,
             "width": 90, "height": 67},
            {"file_id": big_id, "file_unique_id": big_unique, "file_size": len(content),
             "width": 1280, "height": 960},
        ]  # fmt: skip
        extra = {"caption": caption} if caption else {}
        return self.push("message", self.message(user, photo=sizes, **extra))

    def document(
        self,
        content: bytes,
        name: str,
        mime: str,
        user: dict[str, Any] = ANA,
        size: int | None = None,
    ) -> dict[str, Any]:
        file_id, unique = self.add_file(content)
        doc = {
            "file_name": name,
            "mime_type": mime,
            "file_id": file_id,
            "file_unique_id": unique,
            "file_size": len(content) if size is None else size,
        }
        return self.push("message", self.message(user, document=doc))

    def voice(self, content: bytes, user: dict[str, Any] = ANA) -> dict[str, Any]:
        file_id, unique = self.add_file(content)
        voice = {"duration": 3, "mime_type": "audio/ogg", "file_id": file_id,
                 "file_unique_id": unique, "file_size": len(content)}  # fmt: skip
        return self.push("message", self.message(user, voice=voice))

    def location(self, lat: float, lon: float, user: dict[str, Any] = ANA) -> dict[str, Any]:
        return self.push("message", self.message(user, location={"latitude": lat,
                                                                 "longitude": lon}))  # fmt: skip

    def contact(
        self, phone: str, user: dict[str, Any] = ANA, owner: int | None = None
    ) -> dict[str, Any]:
        """A shared contact card; ``owner`` its ``user_id`` (default: the sender's own)."""
        card = {"phone_number": phone, "first_name": user["first_name"],
                "user_id": user["id"] if owner is None else owner}  # fmt: skip
        return self.push("message", self.message(user, contact=card))

    def edit(self, original: dict[str, Any], text: str) -> dict[str, Any]:
        message = dict(original["message"])
        message["text"] = text
        message["edit_date"] = message["date"] + 60
        return self.push("edited_message", message)

    def group_text(self, text: str, user: dict[str, Any] = ANA) -> dict[str, Any]:
        return self.push("message", self.message(user, chat=GROUP, text=text))

    # --- the server ---------------------------------------------------------------------

    @property
    def confirmed(self) -> int | None:
        """The highest offset a getUpdates call has confirmed (None: none yet)."""
        known = [o for o in self.offsets if o is not None]
        return max(known) if known else None

    async def handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if method not in ("getUpdates", "getFile", "setWebhook", "deleteWebhook",
                          "getWebhookInfo"):  # fmt: skip
            return await super().handle(request)
        self.calls.append(method)
        if token != self.token:
            return _failed(401, {"description": "Unauthorized"})
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.setdefault(method, []).append(form)
        queued = self.failures.get(method)
        if queued:
            status, body = MORE_FAILURES[queued.pop(0)]
            return _failed(status, body)
        if method == "getUpdates":
            return await self._get_updates(form)
        if method == "getFile":
            file_id = form["file_id"]
            if file_id not in self.files:
                return _failed(400, {"description": "Bad Request: invalid file_id"})
            result = {
                "file_id": file_id,
                "file_unique_id": file_id[4:],
                "file_size": len(self.files[file_id]),
                "file_path": f"documents/{file_id}",
            }
            return web.json_response({"ok": True, "result": result})
        if method == "setWebhook":
            self.webhook_url = form["url"]
            return web.json_response({"ok": True, "result": True, "description": "Webhook was set"})
        if method == "deleteWebhook":
            self.webhook_url = ""
            return web.json_response({"ok": True, "result": True})
        info = {"url": self.webhook_url, "has_custom_certificate": False,
                "pending_update_count": len(self.pending), "max_connections": 40,
                "allowed_updates": json.loads(self.forms["setWebhook"][-1]["allowed_updates"])
                if self.forms.get("setWebhook") else []}  # fmt: skip
        return web.json_response({"ok": True, "result": info})

    async def _get_updates(self, form: dict[str, str]) -> web.Response:
        offset = int(form["offset"]) if form.get("offset") else None
        self.offsets.append(offset)
        if offset is not None:
            # Bot API getUpdates: updates below the offset are confirmed, forgotten.
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        limit = min(int(form.get("limit") or 100), self.max_batch)
        deadline = time.monotonic() + float(form.get("timeout") or 0)
        while not self.pending and time.monotonic() < deadline:
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        if self.serve_delay:
            await asyncio.sleep(self.serve_delay)
        return web.json_response({"ok": True, "result": self.pending[:limit]})

    async def download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _failed(404, {"description": "Not Found"})
        path = request.match_info["path"]
        self.downloads.append(path)
        content = self.files.get(path.rpartition("/")[2])
        if content is None:
            return _failed(404, {"description": "Not Found"})
        return web.Response(body=content, content_type="application/octet-stream")


@asynccontextmanager
async def fake_bot_api(api: FakeBotApi | None = None) -> AsyncIterator[tuple[FakeBotApi, str]]:
    """The fake on a free loopback port: (its state, the base URL for ``api_base_url``)."""
    api = api or FakeBotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api.handle)
    app.router.add_get("/file/bot{token}/{path:.+}", api.download)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield api, f"http://127.0.0.1:{server.port}"
    finally:
        api.release.set()
        api._new.set()
        await server.close()


__all__ = ["ANA", "GROUP", "JOHN", "ROBOT", "TOKEN", "FakeBotApi", "fake_bot_api"]
