"""``OutboxDispatcher``: claims due notifications, sends each through its provider, records
every attempt (DESIGN §2 step 4).

Claims and outcomes are operations on the one write path, so on SQLite the single writer
does them and on PostgreSQL several daemons share the outbox (``FOR UPDATE SKIP LOCKED``).
Sends run with bounded concurrency per provider; the dispatcher is poked when new rows
are committed and polls otherwise. A send's slot frees when the provider answers; its
outcome is recorded by a task of its own that a stop waits for and never cancels, so a
stop never leaves a sent message recorded as unsent. After a crash a claimed row comes
back when its lease runs out and is sent again with the same Message-ID and idempotency
key, its attempt marked as a possible duplicate; a row recorded as sent never is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from notifiers.base import (
    Delivered,
    FileRef,
    Notifier,
    Outgoing,
    PermanentError,
    TransientError,
)
from notifiers.delivery_ops import (
    ClaimDue,
    Claimed,
    ClaimedRow,
    RecordAttempt,
    ReleaseClaims,
)
from notifiers.metrics import DispatchMetrics
from notifiers.retry import GiveUp, RetryPolicy
from plumbing.runner import Runner
from storage.models import utcnow
from storage.write_path import WritePath

log = logging.getLogger(__name__)
RECORD_BATCH = 16  # outcomes worth writing at once without waiting for more
RECORD_LINGER_SECONDS = 0.01


class OutboxDispatcher(Runner[ClaimedRow]):
    def __init__(
        self,
        writes: WritePath,
        notifiers: Mapping[str, Notifier],
        policy: RetryPolicy,
        metrics: DispatchMetrics,
        *,
        owner: str,
        slots: int = 32,
        lease_seconds: float = 300.0,
        poll_seconds: float = 5.0,
        grace_seconds: float = 10.0,
        file_path: Callable[[str], Path] | None = None,
    ) -> None:
        """``file_path`` finds an attachment's file in the store by its digest."""
        # Claims of half the slots at least: each claim is a write of its own.
        super().__init__("dispatcher", slots=slots, poll_seconds=poll_seconds,
                         grace_seconds=grace_seconds, min_claim=slots // 2)  # fmt: skip
        self.writes = writes
        self.notifiers = dict(notifiers)
        self.policy = policy
        self.metrics = metrics
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.file_path = file_path
        self._in_flight: set[int] = set()  # rows a provider has, outcome not yet known
        self._outcomes: list[RecordAttempt] = []  # waiting to be written
        self._recorder: asyncio.Future[None] | None = None  # writes them
        self._limits = {
            name: asyncio.Semaphore(max(1, n.concurrency)) for name, n in self.notifiers.items()
        }

    async def start_notifiers(self) -> None:
        for notifier in self.notifiers.values():
            await notifier.start()

    async def stop_notifiers(self) -> None:
        for notifier in self.notifiers.values():
            try:
                await notifier.stop()
            except Exception as exc:
                log.warning("notifier %s did not stop cleanly: %s", notifier.name, exc)

    # --- the runner ------------------------------------------------------------------

    async def claim(self, capacity: int) -> Sequence[ClaimedRow]:
        claimed: Claimed = await self.writes.submit(
            ClaimDue(self.owner, capacity, self.lease_seconds)
        )
        for channel, provider in claimed.suppressed:
            self.metrics.outcome(channel, provider, "suppressed", None)
        return claimed.rows

    async def release(self, items: Sequence[ClaimedRow]) -> None:
        # A row cancelled while its provider had it may have gone out: it comes back as a
        # lapsed claim, so its next attempt is marked as a possible duplicate.
        handed = tuple(r.id for r in items if r.id in self._in_flight)
        waiting = tuple(r.id for r in items if r.id not in self._in_flight)
        self._in_flight.clear()
        await self.writes.submit(ReleaseClaims(self.owner, waiting, in_flight=handed))

    async def process(self, row: ClaimedRow) -> None:
        notifier = self.notifiers.get(row.provider)
        started = utcnow()
        clock = time.perf_counter()
        if notifier is None:
            record = self._failed(row, started, 0, PermanentError(
                f"no provider {row.provider!r} is configured for {row.channel}"
            ))  # fmt: skip
        else:
            async with self._limits[row.provider]:
                self._in_flight.add(row.id)
                try:
                    delivered = await notifier.send(self.outgoing(row))
                except PermanentError as exc:
                    record = self._failed(row, started, _ms(clock), exc)
                except TransientError as exc:
                    record = self._retry(row, started, _ms(clock), exc)
                except asyncio.CancelledError:
                    raise  # unrecorded: the lease brings it back (a possible duplicate)
                except Exception as exc:  # a notifier bug must not lose the message
                    log.exception("notifier %s failed unexpectedly", row.provider)
                    record = self._retry(row, started, _ms(clock), TransientError(
                        f"{type(exc).__name__}: {exc}"
                    ))  # fmt: skip
                else:
                    record = self._sent(row, started, _ms(clock), delivered)
        self._in_flight.discard(row.id)
        self.metrics.outcome(row.channel, row.provider, record.status, record.duration_ms)
        # The slot is free once the provider has answered. Outcomes are written by one
        # task, a batch at a time: those that arrive while one batch commits go together
        # in the next (one transaction, not one each). A stop waits for it and does not
        # cancel it, so a message that went out is never left recorded as unsent.
        self._outcomes.append(record)
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.ensure_future(self._record_all())

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self._recorder is not None:
                # asyncio.wait, not gather: being cancelled here must not cancel it.
                await asyncio.wait({self._recorder})

    async def _record_all(self) -> None:
        while self._outcomes:
            if len(self._outcomes) < RECORD_BATCH and not self._stopping.is_set():
                # The message is out already; lingering a moment makes one transaction of
                # several outcomes, which is what the writer's time goes on under load.
                await asyncio.sleep(RECORD_LINGER_SECONDS)
            batch, self._outcomes = self._outcomes, []
            answers = await asyncio.gather(
                *(self.writes.submit(record) for record in batch), return_exceptions=True
            )
            for record, answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    # Not recorded: the row stays claimed and comes back when its lease
                    # runs out.
                    log.error("cannot record the outcome of notification %d: %s",
                              record.notification_id, answer)  # fmt: skip

    # --- outcomes --------------------------------------------------------------------

    def outgoing(self, row: ClaimedRow) -> Outgoing:
        headers = dict(row.headers)
        if row.message_id:
            headers.setdefault("Message-ID", f"<{row.message_id}>")
        return Outgoing(
            notification_id=row.id,
            channel=row.channel,
            provider=row.provider,
            recipient=row.recipient,
            subject=row.subject,
            text=row.body,
            html=row.html,
            headers=headers,
            attachments=self._files(row),
            idempotency_key=f"ventanilla-{row.id}",
            possible_duplicate=row.possible_duplicate,
        )

    def _files(self, row: ClaimedRow) -> tuple[FileRef, ...]:
        if not row.attachments:
            return ()
        if self.file_path is None:
            raise PermanentError("this dispatcher has no attachment store", code="attachment")
        return tuple(
            FileRef(self.file_path(a["sha256"]), a["filename"], a["content_type"])
            for a in row.attachments
        )

    def _sent(
        self, row: ClaimedRow, started: datetime, ms: int, delivered: Delivered
    ) -> RecordAttempt:
        return RecordAttempt(
            row.id, self.owner, started, ms, "sent", "sent", row.provider,
            code=delivered.code, response=delivered.response,
            provider_message_id=delivered.provider_message_id,
            possible_duplicate=row.possible_duplicate,
        )  # fmt: skip

    def _retry(
        self, row: ClaimedRow, started: datetime, ms: int, exc: TransientError
    ) -> RecordAttempt:
        decision = self.policy.after_transient(row.attempts, utcnow(), str(exc), exc.retry_after)
        if isinstance(decision, GiveUp):
            status, retry_at, reason = decision.status, None, decision.reason
        else:
            status, retry_at, reason = "pending", decision.at, decision.reason
        return RecordAttempt(
            row.id, self.owner, started, ms, "transient", status, row.provider,
            retry_at=retry_at, reason=reason, code=exc.code, response=exc.response,
            possible_duplicate=row.possible_duplicate,
        )  # fmt: skip

    def _failed(
        self, row: ClaimedRow, started: datetime, ms: int, exc: PermanentError
    ) -> RecordAttempt:
        return RecordAttempt(
            row.id, self.owner, started, ms, "permanent", "failed", row.provider,
            reason=str(exc), code=exc.code, response=exc.response,
            possible_duplicate=row.possible_duplicate, gone=exc.gone,
        )  # fmt: skip


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)
