"""Webhook mode (``[telegram] mode = "webhook"``): Telegram POSTs each update to
``/webhooks/telegram`` on our HTTP server.

At start the webhook is set (Bot API setWebhook) to ``{[http] public_url}/webhooks/telegram``
with our secret and the update kinds we take; Telegram then sends the secret in the
``X-Telegram-Bot-Api-Secret-Token`` header of every request, compared here in constant
time (a wrong one: 403, nothing stored). An update is answered 200 only once it is
committed: Telegram retries a webhook request that fails, so a 503 while the database is
down (or a file cannot be fetched yet) is how the update is kept. /readyz shows
getWebhookInfo (what Telegram says of its deliveries to us), read at most every 30 s.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.error import TelegramError

from intake.telegram_link import BotLink, TelegramStatus, TokenRejected
from intake.telegram_updates import ALLOWED_UPDATES, TelegramUpdates

log = logging.getLogger(__name__)

PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
INFO_SECONDS = 30.0
MAX_UPDATE_BYTES = 1_048_576  # one update is a few kB; files come by getFile, not here


def _error(status: int, code: str, message: str, retry_after: float | None = None) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(retry_after)))
    return response


class TelegramWebhook:
    """Sets the webhook at start and takes the updates Telegram POSTs."""

    def __init__(
        self,
        updates: TelegramUpdates,
        token: str,
        secret: str,
        url: str,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.updates = updates
        self.secret = secret.encode("utf-8")
        self.url = url
        self.status = TelegramStatus("webhook")
        self.link = BotLink(
            updates, self.status, token, backoff_initial=backoff_initial, backoff_max=backoff_max
        )
        self._info: dict[str, Any] = {}
        self._info_at = -INFO_SECONDS

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self.handle)]

    @property
    def ready(self) -> bool:
        return self.status.state == "running"

    async def state(self) -> dict[str, object]:
        if self.link.started and time.monotonic() - self._info_at >= INFO_SECONDS:
            await self._read_info()
        self.status.extra = {"webhook": self._info}
        return self.status.as_dict(self.updates.counts.by_kind)

    async def run(self) -> None:
        try:
            if await self.link.connect():
                while not self.link.stopping.is_set():
                    try:
                        await self.updates.app.bot.set_webhook(
                            url=self.url,
                            secret_token=self.secret.decode("utf-8"),
                            allowed_updates=ALLOWED_UPDATES,
                        )
                    except TelegramError as exc:
                        await self.link.failed(exc, "setWebhook")
                        continue
                    self.link.succeeded()
                    log.info("telegram: webhook set to %s", self.url)
                    break
                # The webhook stays set when we stop: Telegram keeps the updates that
                # arrive meanwhile and delivers them once we answer again.
                await self.link.idle_until_stopped()
        except TokenRejected:
            await self.link.idle_until_stopped()
        finally:
            await self.link.close()
            self.status.state = "stopped"

    async def stop(self) -> None:
        self.link.stopping.set()

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8")
        if not hmac.compare_digest(given, self.secret):
            log.warning("telegram: webhook request from %s with a wrong secret", request.remote)
            return _error(403, "forbidden", f"missing or wrong {SECRET_HEADER}")
        if not self.link.started:
            return _error(503, "unavailable", "the Telegram intake is not running", 5)
        if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
            return _error(413, "payload_too_large", "an update is at most 1 MB")
        body = await request.content.read(MAX_UPDATE_BYTES + 1)
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            update = Update.de_json(data, self.updates.app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, "bad_request", f"not a Telegram update: {exc}")
        if update is None:
            return _error(400, "bad_request", "not a Telegram update")
        outcome = await self.updates.process(update, raw=body)
        if not outcome.done:
            # Bot API: a request that fails is retried; the update waits at Telegram.
            retry = outcome.retry_after if outcome.retry_after is not None else 5
            return _error(503, "unavailable", "not stored now; retry later", retry)
        self.link.succeeded()
        return web.json_response({"ok": True, "outcome": outcome.kind})

    async def _read_info(self) -> None:
        self._info_at = time.monotonic()
        try:
            info = await self.updates.app.bot.get_webhook_info(read_timeout=5)
        except TelegramError as exc:
            self._info = {**self._info, "error": exc.message}
            return
        self._info = {
            "url": info.url,
            "pending_update_count": info.pending_update_count,
            "last_error_message": info.last_error_message,
            "last_error_date": info.last_error_date.isoformat() if info.last_error_date else None,
            "max_connections": info.max_connections,
            "allowed_updates": list(info.allowed_updates or ()),
        }
        if info.url and info.url != self.url:
            log.warning("telegram: the webhook is set to %s, not %s", info.url, self.url)
