"""New mail whose announcement the poller never hears still comes in promptly.

Behind ``AnnouncementHidingProxy`` Dovecot behaves like the servers of issue 17: mail that
arrives during a batch is announced only in the replies to FETCH/MOVE and never again at
IDLE start (Cyrus), or not announced at all (a lost push). The poller must search again
after each batch, and leave IDLE every ``poll_seconds`` to search.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from config.app import Services
from intake.accept import AcceptResult
from intake.email.ingest import EmailIngest, EmailSource
from tests.email.dovecot import (
    DovecotAccount,
    dovecot_fixture,  # noqa: F401 (fixture)
    email_ingest,
    eventually,
    imap_account_fixture,  # noqa: F401 (fixture)
    in_folder,
    inbound_rows,
    mail,
    poller_for,
    running,
)
from tests.email.imap_proxy import hiding_proxy


class DeliveringIngest(EmailIngest):
    """Ingest that delivers one more mail to the mailbox while the first is being taken,
    and notes when each ingest finished."""

    def __init__(self, inner: EmailIngest, account: DovecotAccount, late: bytes) -> None:
        self.__dict__.update(inner.__dict__)
        self._account = account
        self._late: bytes | None = late
        self.finished: list[float] = []

    async def ingest(
        self,
        raw: bytes,
        source: EmailSource,
        envelope_to: Sequence[str] = (),
        *,
        before_accept: Callable[[], Awaitable[object]] | None = None,
        prepared: Any = None,
    ) -> AcceptResult:
        late, self._late = self._late, None
        if late is not None:
            # Straight to Dovecot, not through the proxy: the poller's connection hears of
            # it only in the replies to its next commands.
            await asyncio.to_thread(self._account.append, late)
        result = await super().ingest(raw, source, envelope_to, before_accept=before_accept)
        self.finished.append(time.monotonic())
        return result


async def test_mail_announced_during_a_batch_is_taken_in_the_same_round(
    services: Services, imap_account: DovecotAccount
) -> None:
    first, late = mail("primero"), mail("llegó durante el lote")
    await asyncio.to_thread(imap_account.append, first)
    ingest = DeliveringIngest(email_ingest(services), imap_account, late)
    async with hiding_proxy(imap_account, hide="idle") as (_, through_proxy):
        # poll_seconds far beyond the test: only the search after the batch can bring the
        # late mail in, not a timed exit from IDLE.
        poller = poller_for(
            services,
            through_proxy,
            ingest=ingest,
            after="move",
            move_to="Procesados",
            poll_seconds=120,
        )
        async with running(poller):

            async def both() -> bool:
                return len(ingest.finished) == 2

            await eventually(both, within=10.0, what="the late mail to be ingested")

            async def idle() -> bool:
                return poller.state()["idle"] is True

            await eventually(idle, what="the poller to idle")
        assert [row.raw for row in await inbound_rows(services)] == [first, late]
        # Taken in the round that found the first one, not 120 s later by a timed search.
        assert ingest.finished[1] - ingest.finished[0] < 1.0
        assert len(await in_folder(imap_account, "Procesados")) == 2
        assert poller.state()["last_uid"] == 2


async def test_mail_never_announced_is_taken_within_poll_seconds(
    services: Services, imap_account: DovecotAccount
) -> None:
    poll_seconds = 4.0
    async with hiding_proxy(imap_account, hide="all") as (proxy, through_proxy):
        poller = poller_for(services, through_proxy, after="flag", poll_seconds=poll_seconds)
        async with running(poller):

            async def idle() -> bool:
                return poller.state()["idle"] is True

            await eventually(idle, what="the poller to idle")
            raw = mail("sin aviso")
            await asyncio.to_thread(imap_account.append, raw)
            appended = time.monotonic()

            async def ingested() -> bool:
                return [row.raw for row in await inbound_rows(services)] == [raw]

            # Without a timed search it would wait for the IDLE refresh, 25 minutes.
            await eventually(ingested, within=poll_seconds + 15.0, what="the silent mail")
            waited = time.monotonic() - appended
        # Dovecot did push it; the proxy hid every push, so a timed search found it: within
        # poll_seconds of the append, plus the search and the ingest themselves (which took
        # over a second on a loaded CI machine).
        assert proxy.dropped, "the proxy hid no announcement: the test proves nothing"
        assert waited < poll_seconds + 3.0
