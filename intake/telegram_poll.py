"""Long polling (``[telegram] mode = "polling"``): getUpdates in a loop, each batch stored
before Telegram hears that we have it.

Bot API getUpdates: an update is confirmed, and forgotten by Telegram, once getUpdates is
called with an ``offset`` above its ``update_id``. So the offset moves only past updates
whose outcome is ``done`` (committed, or nothing to commit); from the first one that is not
(the database down, a file to fetch later) the batch is asked for again after a pause, and
what was committed meanwhile comes back as duplicates. A crash or a stop at any point
therefore loses nothing, and stores nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from intake.telegram_link import BotLink, TelegramStatus, TokenRejected
from intake.telegram_updates import ALLOWED_UPDATES, TelegramUpdates, UpdateOutcome

log = logging.getLogger(__name__)

BATCH_LIMIT = 100  # getUpdates limit: 1-100


class UpdatesRequest(HTTPXRequest):
    """The getUpdates client (PTB gives getUpdates a request object of its own), keeping
    the body of the last answer: each update is stored as the JSON Telegram sent, and
    taking it from here instead of serializing PTB's objects again halved the intake's
    CPU time per update (bench/telegram.py)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_body = b""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        code, body = await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        self.last_body = body
        return code, body

    def raw_updates(self) -> dict[int, bytes]:
        """update_id → that update's JSON, from the last answer."""
        try:
            found = json.loads(self.last_body).get("result") or []
        except (ValueError, AttributeError):
            return {}
        return {
            u["update_id"]: json.dumps(u, ensure_ascii=False).encode("utf-8")
            for u in found
            if isinstance(u, dict) and isinstance(u.get("update_id"), int)
        }


class TelegramPoller:
    """Polls until ``stop``; ``run`` never returns on its own otherwise (a rejected token
    leaves it idle, reported as stopped)."""

    def __init__(
        self,
        updates: TelegramUpdates,
        token: str,
        *,
        poll_timeout: int = 30,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        raw_source: UpdatesRequest | None = None,
        on_batch: Callable[[Sequence[Update], float], None] | None = None,
    ) -> None:
        """``raw_source``: the Application's getUpdates client, when it keeps what
        Telegram sent; ``on_batch(updates, fetched_at)`` is told of every batch once it is
        stored."""
        self.updates = updates
        self.status = TelegramStatus("polling")
        self.link = BotLink(
            updates, self.status, token, backoff_initial=backoff_initial, backoff_max=backoff_max
        )
        self.poll_timeout = poll_timeout
        self.raw_source = raw_source
        self.on_batch = on_batch

    @property
    def ready(self) -> bool:
        return self.status.state == "running"

    def state(self) -> dict[str, object]:
        return self.status.as_dict(self.updates.counts.by_kind)

    async def run(self) -> None:
        try:
            if await self.link.connect():
                await self._poll()
        except TokenRejected:
            await self.link.idle_until_stopped()
        finally:
            await self.link.close()
            if self.status.state != "stopped":
                self.status.state = "stopped"

    async def stop(self) -> None:
        """Finish the batch in hand (its commits and the offset), then end ``run``."""
        self.link.stopping.set()

    async def _poll(self) -> None:
        bot = self.updates.app.bot
        while not await self._try(bot.delete_webhook, "removing the webhook"):
            # Bot API: getUpdates "will not work if an outgoing webhook is set up"; a
            # switch from webhook mode leaves one behind. Its pending updates stay queued.
            if self.link.stopping.is_set():
                return
        offset: int | None = None
        while not self.link.stopping.is_set():
            try:
                offset = await self._round(offset)
            except TokenRejected:
                raise
            except Exception as exc:
                # A bug must not stop Telegram for good (nor, through the TaskGroup, the
                # daemon): the batch is not confirmed and is asked for again.
                log.exception("telegram: polling failed; retrying")
                self.status.state = "retrying"
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                await self.link.pause(self.link.next_delay())
        await self._confirm(offset)

    async def _round(self, offset: int | None) -> int | None:
        """One getUpdates and its batch stored; the offset to ask with next."""
        fetched = await self._fetch(offset)
        if fetched is None:
            return offset
        fetched_at = time.perf_counter()
        if not fetched:
            self.link.succeeded()
            return offset
        raws = self.raw_source.raw_updates() if self.raw_source is not None else {}
        outcomes = await self.updates.process_batch(fetched, raws)
        next_offset, pending = _next_offset(fetched, outcomes)
        self.status.offset = next_offset
        if self.on_batch is not None:
            self.on_batch(fetched, fetched_at)
        if pending is not None:
            # Not stored: ask again after a pause (a file, or the database, to recover).
            self.status.last_error = f"update {pending.detail}"
            self.status.state = "retrying"
            await self.link.pause(
                pending.retry_after if pending.retry_after is not None else self.link.next_delay()
            )
        else:
            self.link.succeeded()
        return next_offset

    async def _fetch(self, offset: int | None) -> list[Update] | None:
        """One getUpdates (cut short by a stop); None after a failure or a stop."""
        call = asyncio.ensure_future(
            self.updates.app.bot.get_updates(
                offset=offset,
                limit=BATCH_LIMIT,
                timeout=self.poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        )
        stopping = asyncio.ensure_future(self.link.stopping.wait())
        try:
            await asyncio.wait({call, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not call.done():
            # Stopping in the middle of a long poll: nothing was handed over yet.
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
            return None
        try:
            found = call.result()
        except TelegramError as exc:
            await self.link.failed(exc, "getUpdates")
            return None
        # Running again only once what it brought is stored (see _poll).
        return list(found)

    async def _try(self, method: Callable[..., object], doing: str) -> bool:
        try:
            await method()  # type: ignore[misc]
        except TelegramError as exc:
            await self.link.failed(exc, doing)
            return False
        return True

    async def _confirm(self, offset: int | None) -> None:
        """Tell Telegram what was stored before stopping, so a restart does not fetch it
        again (it would be deduplicated; this saves the round trip). As PTB's Updater
        does at shutdown: a getUpdates with the offset, no wait, one update at most, which
        is not handled and so stays unconfirmed."""
        if offset is None:
            return
        try:
            await self.updates.app.bot.get_updates(
                offset=offset, limit=1, timeout=0, allowed_updates=ALLOWED_UPDATES
            )
        except TelegramError as exc:
            log.info("telegram: the last offset was not confirmed at stop (%s)", exc.message)


def _next_offset(
    fetched: Sequence[Update], outcomes: Sequence[UpdateOutcome]
) -> tuple[int, UpdateOutcome | None]:
    """The offset that confirms every update before the first one not done, and that
    outcome (None when all are done)."""
    for update, outcome in zip(fetched, outcomes, strict=True):
        if not outcome.done:
            return update.update_id, outcome
    return fetched[-1].update_id + 1, None
