"""ntfy through the dispatcher against a loopback ntfy server: delivery with ntfy's
message id (title RFC 2047-encoded, the access token sent), Retry-After honoured, 5xx and
hangs retried, a refused topic failing for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.app import Services
from notifiers.base import Outgoing, PermanentError
from notifiers.push_ntfy import NtfyConfig, NtfyNotifier, header_value
from tests.notifiers.dispatch_support import running
from tests.notifiers.push_peers import HANG, NtfyServer, Reply, serving
from tests.notifiers.push_support import (
    add_technician,
    all_sent,
    attempts,
    channels,
    dispatcher_for,
    enqueue_push,
    later_than,
    make_due,
    push_outbox,
    row,
    settled,
    summary,
)

pytestmark = pytest.mark.writer_process


def ntfy_for(server: NtfyServer, token: str = "tk_secreto", timeout: float = 10) -> NtfyNotifier:
    return NtfyNotifier("ntfy", NtfyConfig(server.base_url, token, timeout_seconds=timeout))


async def test_a_notice_is_published_with_its_title_and_id(
    services: Services, tmp_path: Path
) -> None:
    outbox = push_outbox(tmp_path)
    async with serving(NtfyServer(token="tk_secreto")) as ntfy:
        tech = await add_technician(services, "ntfy", "guardia-soporte")
        sent = await enqueue_push(services, outbox, "ntfy", "guardia-soporte", tech)
        forbidden = await enqueue_push(services, outbox, "nopass", "guardia-soporte", tech)
        notifiers = {"ntfy": ntfy_for(ntfy), "nopass": ntfy_for(ntfy, token="")}
        async with running(dispatcher_for(services, notifiers)):
            await settled(services, sent, forbidden)
    [published] = ntfy.received
    assert published.topic == "guardia-soporte"
    assert published.title == "Caso CAS-000123 asignado: atención"  # sent RFC 2047-encoded
    assert published.message == "Sin conexión desde ayer en la sucursal."
    done = await row(services, sent)
    assert done.status == "sent" and done.provider_id == "ntfy1"
    assert summary(await attempts(services, sent)) == [("sent", "200")]
    refused = await row(services, forbidden)
    assert refused.status == "failed" and "forbidden" in (refused.status_reason or "")
    assert summary(await attempts(services, forbidden)) == [("permanent", "403 40301")]
    assert len(await channels(services, tech)) == 2  # a refusal is not a gone address


async def test_limits_outages_and_hangs_are_retried(services: Services, tmp_path: Path) -> None:
    outbox = push_outbox(tmp_path)
    async with serving(NtfyServer()) as ntfy:
        limited = {"code": 42901, "http": 429, "error": "limit reached: too many requests"}
        ntfy.script("limitado", Reply(429, limited, {"Retry-After": "900"}))
        ntfy.script("caido", Reply(502, "bad gateway"))
        ntfy.script("colgado", HANG)
        ids = [await enqueue_push(services, outbox, "ntfy", t)
               for t in ("limitado", "caido", "colgado")]  # fmt: skip
        dispatcher = dispatcher_for(services, {"ntfy": ntfy_for(ntfy, timeout=0.5)})
        async with running(dispatcher):
            await settled(services, *ids)
            rows = [await row(services, i) for i in ids]
            assert [r.status for r in rows] == ["pending"] * 3
            assert later_than(rows[0].next_attempt_at, 800)
            for row_id in ids:
                await make_due(services, row_id)
            dispatcher.poke()
            await all_sent(services, *ids)
    assert [summary(await attempts(services, i)) for i in ids] == [
        [("transient", "429 42901"), ("sent", "200")],
        [("transient", "502"), ("sent", "200")],
        [("transient", "timeout"), ("sent", "200")],
    ]


# --- the notifier alone -------------------------------------------------------------------


async def test_link_priority_and_a_one_line_notice() -> None:
    async with serving(NtfyServer()) as ntfy:
        notifier = ntfy_for(ntfy, token="")
        link = "https://soporte.example.com/casos/CAS-000001"
        try:
            await notifier.send(Outgoing(1, "push", "ntfy", "guardia", "", "Caso nuevo: ¡urgente!",
                                         headers={"url": link, "priority": "high"}))  # fmt: skip
        finally:
            await notifier.stop()
    [published] = ntfy.received
    assert (published.click, published.priority) == (link, "high")
    # ntfy shows "triggered" for an empty body: the one line is the message itself.
    assert (published.title, published.message) == ("", "Caso nuevo: ¡urgente!")


async def test_a_recipient_that_is_no_topic_is_refused_without_a_request() -> None:
    notifier = NtfyNotifier("ntfy", NtfyConfig("http://127.0.0.1:9"))
    with pytest.raises(PermanentError, match="not an ntfy topic"):
        await notifier.send(Outgoing(1, "push", "ntfy", "../admin", "Caso", "Hola"))
    await notifier.stop()


def test_header_values_outside_ascii_are_rfc2047_encoded() -> None:
    assert header_value("Caso CAS-1") == "Caso CAS-1"
    assert header_value("Conexión\ncaída") == "=?UTF-8?B?Q29uZXhpw7NuIGNhw61kYQ==?="
