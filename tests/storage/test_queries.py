"""Read queries: case filters, keyset pagination, case detail with timeline, inbound log."""

from __future__ import annotations

import base64
import uuid

import pytest
from sqlalchemy import select, update

from config.app import Services
from intake.message import AcceptResult, Address, Attachment, Channel, InboundMessage
from storage.models import Case, Status
from storage.paging import decode_cursor, encode_cursor
from storage.queries import (
    CaseFilters,
    QueryError,
    TimelineEvent,
    TimelineMessage,
    failed_inbound_ids,
    get_case,
    list_cases,
    list_inbound,
)
from tests.conftest import broken_routing


async def accept(
    services: Services,
    *,
    name: str = "Ana Pérez",
    email: str | None = "ana@example.com",
    phone: str | None = None,
    subject: str = "No tengo Internet",
    text: str = "Desde ayer no tengo conexión.",
    category: str = "Problema Grave",
    channel: Channel = Channel.API,
    attachments: tuple[Attachment, ...] = (),
) -> AcceptResult:
    result = await services.writer.accept(
        InboundMessage(
            channel=channel,
            external_id=uuid.uuid4().hex,
            sender=Address(name=name, email=email, phone=phone),
            raw=b"raw",
            subject=subject,
            text=text,
            category=category,
            attachments=attachments,
        )
    )
    assert result.outcome in ("created", "continued"), result
    return result


async def numbers(services: Services, **filters: str) -> list[str]:
    page = await services.db.read(list_cases, CaseFilters(**filters))
    return [c.number for c in page.items]


async def test_cases_come_newest_first_with_names_resolved(services: Services) -> None:
    first = await accept(services, category="Problema Grave")
    second = await accept(services, email="beto@example.com", category="Problema menor")
    page = await services.db.read(list_cases)
    assert [c.number for c in page.items] == [second.case_number, first.case_number]
    assert page.next_cursor is None
    grave = page.items[1]
    assert (grave.status, grave.priority, grave.severity) == ("Abierta", "Normal", "Medios")
    assert (grave.category, grave.area, grave.assignee) == (
        "Problema Grave",
        "Técnica",
        "Técnico de guardia",
    )
    assert (grave.customer_name, grave.contact, grave.origin_channel) == (
        "Ana Pérez",
        "ana@example.com",
        "api",
    )
    assert grave.created_at.tzinfo is not None


async def test_filter_by_status_area_assignee_and_channel(services: Services) -> None:
    grave = await accept(services, category="Problema Grave")
    menor = await accept(services, email="b@example.com", category="Problema menor")
    web = await accept(
        services, email="c@example.com", category="Problema menor", channel=Channel.WEB
    )
    async with services.db.session() as session, session.begin():
        in_progress = await session.scalar(select(Status.id).where(Status.name == "En Progreso"))
        await session.execute(
            update(Case).where(Case.number == menor.case_number).values(status_id=in_progress)
        )
    assert await numbers(services, status="en progreso") == [menor.case_number]
    assert await numbers(services, status="Abierta") == [web.case_number, grave.case_number]
    assert await numbers(services, area="Técnica") == [grave.case_number]
    assert await numbers(services, area="Mesa de ayuda") == [web.case_number, menor.case_number]
    assert await numbers(services, assignee="Técnico de guardia") == [grave.case_number]
    assert await numbers(services, channel="web") == [web.case_number]
    assert await numbers(services, channel="telegram") == []
    # Filters combine with AND.
    assert await numbers(services, area="Mesa de ayuda", channel="api") == [menor.case_number]


async def test_unknown_catalog_names_are_errors_not_empty_lists(services: Services) -> None:
    await accept(services)
    for param in ("status", "area", "assignee"):
        with pytest.raises(QueryError) as caught:
            await services.db.read(list_cases, CaseFilters(**{param: "No existe"}))
        assert caught.value.param == param
        assert "No existe" in str(caught.value)


async def test_filter_by_customer_id_email_or_phone(services: Services) -> None:
    ana = await accept(services, email="ana@example.com")
    beto = await accept(services, name="Beto", email=None, phone="+5491155550000")
    async with services.db.session() as session:
        ana_id = await session.scalar(
            select(Case.customer_id).where(Case.number == ana.case_number)
        )
    assert await numbers(services, customer="ANA@example.com") == [ana.case_number]
    assert await numbers(services, customer="+54 9 11 5555 0000") == [beto.case_number]
    assert await numbers(services, customer=str(ana_id)) == [ana.case_number]
    assert await numbers(services, customer="nadie@example.com") == []


async def test_q_finds_text_in_title_description_and_follow_up_messages(services: Services) -> None:
    first = await accept(services, subject="Sin señal", text="El módem parpadea")
    other = await accept(services, email="b@example.com", subject="Factura", text="Cobro doble")
    # A follow-up (subject tag) adds a message whose words are not in the case itself.
    follow = await accept(services, subject=f"Re: [{first.case_number}]", text="El ROUTER se quemó")
    assert follow.outcome == "continued"
    assert await numbers(services, q="router se") == [first.case_number]
    assert await numbers(services, q="módem") == [first.case_number]
    assert await numbers(services, q="factura") == [other.case_number]
    assert await numbers(services, q="nada de esto") == []


async def test_q_matches_like_wildcards_literally(services: Services) -> None:
    pct = await accept(services, subject="Caída al 100% del servicio", text="-")
    await accept(services, email="b@example.com", subject="Caída 1000 veces", text="-")
    under = await accept(services, email="c@example.com", subject="usuario a_b", text="-")
    await accept(services, email="d@example.com", subject="usuario axb", text="-")
    assert await numbers(services, q="100%") == [pct.case_number]
    assert await numbers(services, q="a_b") == [under.case_number]


async def test_keyset_pagination_sees_every_case_once_in_order(services: Services) -> None:
    created = [
        (await accept(services, email=f"c{i}@example.com", subject=f"Caso {i}")).case_number
        for i in range(7)
    ]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await services.db.read(list_cases, limit=3, cursor=cursor)
        pages += 1
        seen += [c.number for c in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == list(reversed(created))


async def test_exactly_full_last_page_has_no_cursor(services: Services) -> None:
    for i in range(3):
        await accept(services, email=f"c{i}@example.com")
    page = await services.db.read(list_cases, limit=3)
    assert len(page.items) == 3
    assert page.next_cursor is None


def test_cursor_round_trip_and_rejects_foreign_strings() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("!!!", "12", base64.urlsafe_b64encode(b"v1:abc").decode(), "Zm9v", "é"):
        with pytest.raises(QueryError) as caught:
            decode_cursor(bad)
        assert caught.value.param == "cursor"


@pytest.mark.parametrize("limit", [0, 201, -1])
async def test_limit_out_of_range_is_refused(services: Services, limit: int) -> None:
    with pytest.raises(QueryError) as caught:
        await services.db.read(list_cases, limit=limit)
    assert caught.value.param == "limit"


async def test_case_detail_has_names_identities_and_timeline(services: Services) -> None:
    stored = services.attachments.save_sync(b"\x89PNG" + bytes(2044), "m.png", "image/png")
    photo = Attachment(sha256=stored.sha256, size=2048, content_type="image/png", filename="m.png")
    created = await accept(services, text="No tengo conexión", attachments=(photo,))
    assert created.case_number is not None
    await accept(services, subject=f"[{created.case_number}] sigue", text="Sigue igual")
    case = await services.db.read(get_case, created.case_number)
    missing = await services.db.read(get_case, "CAS-999999")
    assert missing is None
    assert case is not None
    assert case.row.number == created.case_number
    assert (case.row.status, case.status_kind, case.row.area) == ("Abierta", "open", "Técnica")
    assert case.description == "No tengo conexión"
    assert [(i.kind, i.value) for i in case.identities] == [("email", "ana@example.com")]
    kinds = [
        f"msg:{e.text}" if isinstance(e, TimelineMessage) else f"event:{e.kind}"
        for e in case.timeline
    ]
    assert kinds == [
        "msg:No tengo conexión",
        "event:created",
        "event:routed",
        "msg:Sigue igual",
        "event:message_received",
    ]
    first = case.timeline[0]
    assert isinstance(first, TimelineMessage)
    assert (first.direction, first.channel, first.sender) == (
        "in",
        "api",
        "Ana Pérez <ana@example.com>",
    )
    assert [(a.filename, a.size) for a in first.attachments] == [("m.png", 2048)]
    routed = case.timeline[2]
    assert isinstance(routed, TimelineEvent)
    assert any("Técnica" in reason for reason in routed.detail["reasons"])
    times = [e.created_at for e in case.timeline]
    assert times == sorted(times)


async def test_inbound_log_filters_by_status_and_lists_failed_ids(services: Services) -> None:
    ok = await accept(services)
    async with broken_routing(services):
        failed = await services.writer.accept(
            InboundMessage(Channel.SMS, "SM-1", Address(phone="+5491100000000"), b"raw", text="x")
        )
    assert failed.outcome == "failed"
    everything = await services.db.read(list_inbound)
    only_failed = await services.db.read(list_inbound, status="failed")
    only_api = await services.db.read(list_inbound, channel="API")
    ids = await services.db.read(failed_inbound_ids)
    assert [r.id for r in everything.items] == [failed.inbound_id, ok.inbound_id]
    assert [r.external_id for r in only_failed.items] == ["SM-1"]
    assert only_failed.items[0].error and "routing" in only_failed.items[0].error
    assert only_failed.items[0].case_number is None
    assert [r.case_number for r in only_api.items] == [ok.case_number]
    assert ids == [failed.inbound_id]
