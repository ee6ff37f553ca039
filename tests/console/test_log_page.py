"""The outbound log page: the table and its links, filters, saved filters, an agent's
scope, 'Ver', the customer and case pages, and resending one, a selection or a filter
through a confirmation to the job's progress."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from sqlalchemy import select, update

from config.app import Services
from intake.message import Address, Channel, InboundMessage
from notifiers.resend_jobs import ResendStep, StepDone
from storage.models import Notification, Technician
from tests.console.console_support import Client, add_user, csrf_in, sign_in

LOG = "/console/log"


async def open_case(services: Services, email: str, subject: str, category: str) -> str:
    result = await services.writer.accept(
        InboundMessage(
            channel=Channel.API,
            external_id=uuid.uuid4().hex,
            sender=Address(name=f"Cliente {email.split('@')[0]}", email=email),
            raw=b"raw",
            subject=subject,
            text=f"Texto de {subject}",
            category=category,
        )
    )
    assert result.case_number
    return result.case_number


async def seed(services: Services) -> dict[str, str]:
    """Three cases (two for the on-call technician, one for the help desk), each with an
    acknowledgement to the customer and a notice to the technician; the acknowledgements
    failed, the notices were sent."""
    numbers = {
        "ana": await open_case(services, "ana@example.com", "Sin señal", "Problema Grave"),
        "beto": await open_case(services, "beto@example.com", "Módem quemado", "Problema Grave"),
        "carla": await open_case(services, "carla@example.com", "Servicio lento", "Problema menor"),
    }
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Notification)
            .where(Notification.audience == "customer")
            .values(status="failed", status_reason="mailbox full", attempts=1)
        )
        await session.execute(
            update(Notification).where(Notification.audience != "customer").values(status="sent")
        )
    return numbers


async def rows(services: Services, **where: Any) -> list[Any]:
    def read(conn: Any) -> list[Any]:
        stmt = select(Notification.id, Notification.recipient, Notification.resend_of)
        for name, value in where.items():
            stmt = stmt.where(getattr(Notification, name) == value)
        return list(conn.execute(stmt.order_by(Notification.id)))

    result: list[Any] = await services.db.read(read)
    return result


def ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]


def links_on(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(/console/log/\d+)"', page)]


async def test_the_table_shows_every_column_and_links(services: Services, client: Client) -> None:
    numbers = await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    response = await client.get(LOG)
    assert response.status == 200
    page = await response.text()
    assert "6 mensajes" in page
    for header in ("Canal", "Fecha", "Destinatario", "Cliente", "Caso", "Asunto o primera línea"):
        assert f"<th>{header}</th>" in page
    assert "ana@example.com" in page and "guardia@example.com" in page
    assert "Falló" in page and "mailbox full" in page and "Automático" in page
    customer = re.search(
        r'ana@example\.com</td>\s*<td[^>]*><a href="(/console/customers/\d+)" '
        r'target="_blank" rel="noopener">Cliente ana</a>',
        page,
    )
    assert customer, "the customer's name opens their page in a new tab"
    assert f'href="/console/cases/{numbers["ana"]}"' in page
    assert len(ids_on(page)) == 6 and "data-select-all" in page
    assert 'data-resend="selected"' in page

    timeline = await client.get(customer.group(1))
    assert timeline.status == 200
    text = await timeline.text()
    assert "Historial" in text and "Sin señal" in text and "ana@example.com" in text
    case = await client.get(f"/console/cases/{numbers['ana']}")
    assert case.status == 200 and "Sin señal" in await case.text()
    assert (await client.get("/console/cases/CAS-999999")).status == 404
    assert (await client.get("/console/customers/999999")).status == 404


async def test_filters_search_and_bad_values(services: Services, client: Client) -> None:
    numbers = await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    failed = await (await client.get(f"{LOG}?status=failed&channel=email")).text()
    assert "3 mensajes" in failed and "guardia@example.com" not in failed
    assert 'value="failed" checked' in failed and 'value="email" checked' in failed
    sent = await (await client.get(f"{LOG}?sent=true")).text()
    assert "3 mensajes" in sent and "ana@example.com" not in sent
    one_case = await (await client.get(f"{LOG}?case={numbers['beto']}")).text()
    assert "2 mensajes" in one_case and "beto@example.com" in one_case
    searched = await (await client.get(f"{LOG}?q=carla")).text()
    assert "carla@example.com" in searched and "ana@example.com" not in searched
    manual = await (await client.get(f"{LOG}?trigger=manual")).text()
    assert "No hay mensajes que coincidan" in manual
    dated = await (await client.get(f"{LOG}?since=2000-01-01&until=2000-01-02")).text()
    assert "0 mensajes" in dated and 'value="2000-01-02"' in dated
    bad = await client.get(f"{LOG}?since=2001-01-02&until=2001-01-01")
    assert bad.status == 400 and "Revise el filtro" in await bad.text()


async def test_saving_reusing_and_deleting_a_filter(services: Services, client: Client) -> None:
    await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    page = await (await client.get(f"{LOG}?status=failed&save=1&save_name=Fallidos")).text()
    # Without the page's script, a GET only offers to save: the save itself is a POST.
    assert "¿Guardar esta selección en Mis filtros como «Fallidos»?" in page
    saved = await client.post(
        "/console/log/filters",
        data={"csrf_token": csrf_in(page), "status": "failed", "save_name": "Fallidos"},
        allow_redirects=False,
    )
    assert saved.status == 303
    assert saved.headers["Location"] == f"{LOG}?status=failed&saved=Fallidos"
    shown = await (await client.get(saved.headers["Location"])).text()
    assert "Filtro «Fallidos» guardado" in shown
    assert '<option value="Fallidos" selected>' in shown

    again = await client.post(
        "/console/log/filters",
        data={"csrf_token": csrf_in(page), "channel": "sms", "save_name": "Fallidos"},
    )
    assert again.status == 409 and "No se pudo guardar" in await again.text()

    reused = await client.get(f"{LOG}?filter=Fallidos", allow_redirects=False)
    assert reused.status == 303 and reused.headers["Location"] == f"{LOG}?status=failed"
    assert (await client.get(f"{LOG}?filter=nadie")).status == 404

    filter_id = re.search(r"/console/log/filters/(\d+)/delete", shown)
    assert filter_id
    gone = await client.post(
        f"/console/log/filters/{filter_id.group(1)}/delete",
        data={"csrf_token": csrf_in(shown)},
        allow_redirects=False,
    )
    assert gone.status == 303
    assert "Fallidos" not in await (await client.get(LOG)).text()


async def test_an_agent_sees_their_cases_only_and_cannot_resend(
    services: Services, client: Client
) -> None:
    await seed(services)
    technician = await services.db.read(
        lambda conn: conn.scalar(
            select(Technician.id).where(Technician.name == "Técnico de guardia")
        )
    )
    await add_user(services, "agente", "agent", technician_id=technician)
    await sign_in(client, "agente")
    page = await (await client.get(LOG)).text()
    assert "4 mensajes" in page  # two cases, each an acknowledgement and a notice
    assert "carla@example.com" not in page
    assert 'name="ids"' not in page and "Reenviar" not in page
    carla = await rows(services, recipient="carla@example.com")
    assert (await client.get(f"{LOG}/{carla[0].id}")).status == 404
    mine = links_on(page)[0]
    viewed = await client.get(mine)
    assert viewed.status == 200 and "Reenviar" not in await viewed.text()
    refused = await client.post(
        "/console/log/resend",
        data={"csrf_token": csrf_in(page), "scope": "selected", "ids": str(carla[0].id)},
    )
    assert refused.status == 403 and refused.content_type == "text/html"


async def test_ver_shows_the_message_as_sent(services: Services, client: Client) -> None:
    await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    [ack] = await rows(services, recipient="ana@example.com")
    response = await client.get(f"{LOG}/{ack.id}")
    assert response.status == 200
    page = await response.text()
    assert "Como se envió" in page and "ana@example.com" in page and "Sin señal" in page
    assert "mailbox full" in page
    if f"{LOG}/{ack.id}/html" in page:
        framed = await client.get(f"{LOG}/{ack.id}/html")
        assert framed.status == 200
        assert framed.headers["Content-Security-Policy"].startswith("sandbox;")
    assert (await client.get(f"{LOG}/999999")).status == 404


async def test_resend_a_selection_confirm_then_follow_the_job(
    services: Services, client: Client
) -> None:
    await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    page = await (await client.get(f"{LOG}?status=failed")).text()
    chosen = ids_on(page)[:2]
    form = {
        "csrf_token": csrf_in(page),
        "scope": "selected",
        "ids": [str(i) for i in chosen],
        "idempotency_key": "clave-1",
        "status": "failed",
    }
    asked = await client.post("/console/log/resend", data=form)
    assert asked.status == 200
    assert "¿Reenviar 2 mensajes?" in await asked.text()
    assert len(await rows(services, trigger="manual")) == 0  # nothing before confirming

    form.update(confirm="1", reason="buzón liberado")
    started = await client.post("/console/log/resend", data=form, allow_redirects=False)
    assert started.status == 303
    job_url = started.headers["Location"]
    assert re.fullmatch(r"/console/log/jobs/\d+", job_url)
    twice = await client.post("/console/log/resend", data=form, allow_redirects=False)
    assert twice.headers["Location"] == job_url  # the same key: the same job

    job_page = await (await client.get(job_url)).text()
    assert "En curso" in job_page and "0</span> / <span data-job-total>2" in job_page
    progress = await client.get(f"{job_url}/progress")
    assert (await progress.json())["status"] == "running"
    job_id = int(job_url.rsplit("/", 1)[1])
    step: StepDone = await services.writes.submit(ResendStep(job_id))
    assert step.finished and step.queued == 2
    body = await (await client.get(f"{job_url}/progress")).json()
    assert (body["status"], body["done"], body["queued"]) == ("done", 2, 2)
    resent = await rows(services, trigger="manual")
    assert sorted(r.resend_of for r in resent) == sorted(chosen)
    assert "Terminado" in await (await client.get(job_url)).text()


async def test_resend_everything_a_filter_selects(services: Services, client: Client) -> None:
    await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    page = await (await client.get(f"{LOG}?status=failed")).text()
    assert 'data-resend="filtered" data-count="3"' in page
    form = {"csrf_token": csrf_in(page), "scope": "filtered", "status": "failed"}
    asked = await (await client.post("/console/log/resend", data=form)).text()
    assert "¿Reenviar todos los mensajes filtrados (3 mensajes)?" in asked
    form["confirm"] = "1"
    started = await client.post("/console/log/resend", data=form, allow_redirects=False)
    job_id = int(started.headers["Location"].rsplit("/", 1)[1])
    await services.writes.submit(ResendStep(job_id))
    assert len(await rows(services, trigger="manual")) == 3


async def test_resend_one_goes_to_the_new_row_or_says_why_not(
    services: Services, client: Client
) -> None:
    await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    [ack] = await rows(services, recipient="ana@example.com")
    page = await (await client.get(f"{LOG}/{ack.id}")).text()
    form = {"csrf_token": csrf_in(page), "scope": "selected", "ids": str(ack.id), "confirm": "1"}
    done = await client.post("/console/log/resend", data=form, allow_redirects=False)
    assert done.status == 303
    [new] = await rows(services, resend_of=ack.id)
    assert done.headers["Location"] == f"{LOG}/{new.id}"
    shown = await (await client.get(done.headers["Location"])).text()
    assert f'href="{LOG}/{ack.id}"' in shown and "Original y reenvíos" in shown
    # The new row is still queued: resending it is refused with the reason.
    again = await client.post(
        "/console/log/resend", data={**form, "ids": str(new.id)}, allow_redirects=False
    )
    assert again.status == 409 and "todavía está en cola" in await again.text()
    nothing = await client.post(
        "/console/log/resend", data={"csrf_token": form["csrf_token"], "scope": "selected"}
    )
    assert nothing.status == 422 and "Seleccione al menos un mensaje" in await nothing.text()
    forged = await client.post("/console/log/resend", data={**form, "csrf_token": "x"})
    assert forged.status == 403


async def test_english_pages(services: Services, client: Client) -> None:
    await seed(services)
    await add_user(services, "ops1", "ops")
    await sign_in(client, "ops1")
    page = await (await client.get(LOG, headers={"Accept-Language": "en-US,en;q=0.9"})).text()
    assert "Outbound log" in page and "6 messages" in page and "My filters" in page
