"""IMAP poller against a real Dovecot: fetch, commit, then move/flag/delete; IDLE; restart.

Every test runs on SQLite and PostgreSQL (``services``). Rows are matched by their raw
bytes and every test mail is unique, so the assertions hold whatever the parser makes of a
mail: a processed row deduplicated by Message-ID, or a failed one by the bytes' sha256.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import update

from config.app import Services
from storage.checkpoints import CheckpointStore
from storage.models import ImapCheckpoint
from tests.email.dovecot import (
    DovecotAccount,
    dovecot_fixture,  # noqa: F401 (fixture)
    eventually,
    imap_account_fixture,  # noqa: F401 (fixture)
    in_folder,
    inbound_rows,
    mail,
    poller_for,
    running,
)

SEEN = b"\\Seen"


async def test_existing_mail_is_committed_then_moved(
    services: Services, imap_account: DovecotAccount
) -> None:
    sent = [mail("uno"), mail("dos")]
    for raw in sent:
        await asyncio.to_thread(imap_account.append, raw)
    poller = poller_for(services, imap_account, after="move", move_to="Procesados")
    async with running(poller):

        async def moved() -> bool:
            return len(await in_folder(imap_account, "Procesados")) == 2

        await eventually(moved, what="both mails in Procesados")
        assert await in_folder(imap_account) == {}
    rows = await inbound_rows(services)
    # In UID order, each once, with its exact bytes.
    assert [row.raw for row in rows] == sent
    assert all(row.channel == "email" for row in rows)
    assert poller.state()["last_uid"] == 2
    stored = await CheckpointStore(services.db, services.writes).load("soporte", "INBOX")
    assert stored is not None and stored.last_uid == 2


async def test_flag_marks_committed_mail_seen_and_leaves_it(
    services: Services, imap_account: DovecotAccount
) -> None:
    sent = [mail("uno"), mail("dos")]
    for raw in sent:
        await asyncio.to_thread(imap_account.append, raw)
    async with running(poller_for(services, imap_account, after="flag")):

        async def all_seen() -> bool:
            box = await in_folder(imap_account)
            return len(box) == 2 and all(SEEN in flags for _, flags in box.values())

        await eventually(all_seen, what="both mails flagged \\Seen")
    assert [row.raw for row in await inbound_rows(services)] == sent


async def test_delete_expunges_committed_mail(
    services: Services, imap_account: DovecotAccount
) -> None:
    sent = [mail("uno"), mail("dos")]
    for raw in sent:
        await asyncio.to_thread(imap_account.append, raw)
    async with running(poller_for(services, imap_account, after="delete")):

        async def empty() -> bool:
            return await in_folder(imap_account) == {}

        await eventually(empty, what="INBOX emptied")
    assert [row.raw for row in await inbound_rows(services)] == sent
    assert not await asyncio.to_thread(imap_account.folder_exists, "Processed")


async def test_idle_delivers_new_mail_within_seconds(
    services: Services, imap_account: DovecotAccount
) -> None:
    # poll_seconds far beyond the test: IDLE is not left to search, so only the server's
    # EXISTS push can bring the mail in.
    poller = poller_for(services, imap_account, after="flag", poll_seconds=120)
    assert not poller.ready
    async with running(poller):

        async def idle() -> bool:
            return poller.state()["idle"] is True

        await eventually(idle, what="the poller to enter IDLE")
        state = poller.state()
        assert poller.ready and state["connected"] is True
        assert state["last_success"] is not None and state["last_error"] is None
        raw = mail("en vivo")
        await asyncio.to_thread(imap_account.append, raw)

        async def ingested() -> bool:
            return [row.raw for row in await inbound_rows(services)] == [raw]

        await eventually(ingested, within=5.0, what="the IDLE push to be ingested")
    assert not poller.ready and poller.state()["idle"] is False


async def test_restart_resumes_after_the_checkpoint(
    services: Services, imap_account: DovecotAccount
) -> None:
    # ``flag`` leaves every mail in INBOX: only the checkpoint keeps them from a re-read.
    first = [mail("antes 1"), mail("antes 2")]
    for raw in first:
        await asyncio.to_thread(imap_account.append, raw)
    poller = poller_for(services, imap_account, after="flag")
    async with running(poller):

        async def two() -> bool:
            return len(await inbound_rows(services)) == 2 and poller.state()["idle"] is True

        await eventually(two, what="the first two mails")
    later = [mail("después 1"), mail("después 2"), mail("después 3")]
    for raw in later:
        await asyncio.to_thread(imap_account.append, raw)
    restarted = poller_for(services, imap_account, after="flag")
    async with running(restarted):

        async def caught_up() -> bool:
            return restarted.state()["idle"] is True

        await eventually(caught_up, what="the restarted poller to catch up")
    assert [row.raw for row in await inbound_rows(services)] == first + later
    # Exactly the three new ones were fetched, none twice.
    assert sum(restarted.status.messages.values()) == 3
    assert "duplicate" not in restarted.status.messages
    assert restarted.state()["last_uid"] == 5


async def test_uidvalidity_change_rereads_the_folder_without_duplicates(
    services: Services, imap_account: DovecotAccount, caplog: pytest.LogCaptureFixture
) -> None:
    folder = "Soporte"
    await asyncio.to_thread(imap_account.create_folder, folder)
    old = [mail("vieja 1"), mail("vieja 2")]
    for raw in old:
        await asyncio.to_thread(imap_account.append, raw, folder)
    poller = poller_for(services, imap_account, folder=folder, after="flag")
    async with running(poller):

        async def two() -> bool:
            return len(await inbound_rows(services)) == 2

        await eventually(two, what="the first two mails")
    first_validity = poller.state()["uidvalidity"]
    # The folder is deleted and rebuilt (as a restore or a server migration does): the same
    # mails come back under new UIDs, plus one new mail.
    await asyncio.to_thread(imap_account.delete_folder, folder)
    await asyncio.to_thread(imap_account.create_folder, folder)
    new = mail("nueva")
    for raw in [*old, new]:
        await asyncio.to_thread(imap_account.append, raw, folder)
    new_validity = await asyncio.to_thread(imap_account.uidvalidity, folder)
    assert new_validity != first_validity
    reread = poller_for(services, imap_account, folder=folder, after="flag")
    with caplog.at_level(logging.WARNING, logger="intake.email.imap"):
        async with running(reread):

            async def done() -> bool:
                # IDLE again: the round, checkpoint included, is over.
                return sum(reread.status.messages.values()) == 3 and reread.status.idle

            await eventually(done, what="the folder to be re-read")
    assert "UIDVALIDITY" in caplog.text
    assert [row.raw for row in await inbound_rows(services)] == [*old, new]
    assert reread.status.messages.get("duplicate") == 2
    assert reread.state()["uidvalidity"] == new_validity
    stored = await CheckpointStore(services.db, services.writes).load("soporte", folder)
    assert stored is not None and (stored.uidvalidity, stored.last_uid) == (new_validity, 3)


async def test_changed_stored_uidvalidity_is_detected(
    services: Services, imap_account: DovecotAccount
) -> None:
    raw = mail("única")
    await asyncio.to_thread(imap_account.append, raw)
    poller = poller_for(services, imap_account, after="flag")
    async with running(poller):

        async def one() -> bool:
            return poller.state()["last_uid"] == 1

        await eventually(one, what="the mail")
    async with services.db.session() as session, session.begin():
        await session.execute(update(ImapCheckpoint).values(uidvalidity=12345, last_uid=99))
    again = poller_for(services, imap_account, after="flag")
    async with running(again):

        async def reread() -> bool:
            return again.status.messages.get("duplicate") == 1 and again.status.idle

        await eventually(reread, what="the re-read to find the duplicate")
    assert [row.raw for row in await inbound_rows(services)] == [raw]
    assert again.state()["last_uid"] == 1


async def test_malformed_mail_is_kept_as_failed_and_the_next_is_processed(
    services: Services, imap_account: DovecotAccount
) -> None:
    # An Outlook .msg file (OLE compound document) dropped into the mailbox: not RFC 5322.
    junk = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 not a mail \xff\xfe\r\n"
    good = mail("después de la basura")
    for raw in (junk, good):
        await asyncio.to_thread(imap_account.append, raw)
    async with running(poller_for(services, imap_account, after="move", move_to="Hecho")):

        async def both_moved() -> bool:
            return len(await in_folder(imap_account, "Hecho")) == 2

        await eventually(both_moved, what="both mails moved")
    rows = await inbound_rows(services)
    assert [row.raw for row in rows] == [junk, good]
    assert rows[0].status == "failed" and rows[0].error
