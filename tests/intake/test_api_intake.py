"""POST /api/v1/intake: roles, idempotency, validation, routing of what it accepts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, update

from config.app import Services
from storage.models import Area, Case, Category, Inbound, Notification
from tests.conftest import TokenFactory, broken_routing

Client = Any
URL = "/api/v1/intake"


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "external_id": None,
        "sender": {"name": "Juan Gómez", "email": "Juan@Example.com", "phone": None},
        "subject": "Sin señal",
        "text": "El módem no enciende desde la tormenta.",
        "category": "Problema Grave",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def cases(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Case)) or 0)


async def test_token_required(client: Client, services: Services) -> None:
    resp = await client.post(URL, json=body())
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"
    resp = await client.post(URL, json=body(), headers={"Authorization": "Bearer vt_nope"})
    assert resp.status == 401
    assert await cases(services) == 0


@pytest.mark.parametrize("role", ["agent", "ops"])
async def test_other_roles_are_forbidden(
    client: Client, services: Services, make_token: TokenFactory, role: str
) -> None:
    resp = await client.post(URL, json=body(), headers=auth(await make_token(role)))
    assert resp.status == 403
    assert await cases(services) == 0


@pytest.mark.parametrize("role", ["intake", "admin"])
async def test_creates_a_routed_case(
    client: Client, services: Services, make_token: TokenFactory, role: str
) -> None:
    resp = await client.post(URL, json=body(), headers=auth(await make_token(role)))
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["status"] == "created"
    number = data["case"]["number"]
    async with services.db.session() as session:
        case, area = (
            await session.execute(
                select(Case, Area.name)
                .join(Area, Area.id == Case.area_id)
                .where(Case.number == number)
            )
        ).one()
        assert area == "Técnica"
        assert case.origin_channel == "api"
        assert case.contact == "juan@example.com"
        ack = (
            await session.scalars(select(Notification).where(Notification.audience == "customer"))
        ).one()
        assert (ack.channel, ack.recipient) == ("email", "juan@example.com")
        assert number in ack.subject
        inbound = (await session.scalars(select(Inbound))).one()
        assert b'"text": "El m' in inbound.raw  # the body as received


async def test_idempotency_key_and_external_id_dedup(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    token = await make_token("intake")
    keyed = auth(token, **{"Idempotency-Key": "crm-4711"})
    first = await client.post(URL, json=body(), headers=keyed)
    again = await client.post(URL, json=body(), headers=keyed)
    assert (first.status, again.status) == (201, 200)
    number = (await first.json())["case"]["number"]
    assert await again.json() == {"case": {"number": number}, "status": "duplicate"}
    # The same key with another body is not a repeat: refused, naming the key, and kept out.
    other = await client.post(URL, json=body(subject="Otra cosa"), headers=keyed)
    assert other.status == 422
    assert "Idempotency-Key" in (await other.json())["error"]["fields"]

    one = await client.post(URL, json=body(external_id="msg-1"), headers=auth(token))
    two = await client.post(URL, json=body(external_id="msg-1"), headers=auth(token))
    assert (one.status, two.status) == (201, 200)
    # Without any id every post is new.
    assert (await client.post(URL, json=body(), headers=auth(token))).status == 201
    assert (await client.post(URL, json=body(), headers=auth(token))).status == 201
    assert await cases(services) == 4


async def test_ids_are_scoped_to_the_calling_account(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    shop, crm = await make_token("intake"), await make_token("intake")
    a = await client.post(URL, json=body(external_id="1"), headers=auth(shop))
    b = await client.post(URL, json=body(external_id="1"), headers=auth(crm))
    assert (a.status, b.status) == (201, 201)
    assert (await a.json())["case"] != (await b.json())["case"]


async def test_continues_a_case_named_in_the_subject(
    client: Client, make_token: TokenFactory
) -> None:
    token = await make_token("intake")
    number = (await (await client.post(URL, json=body(), headers=auth(token))).json())["case"][
        "number"
    ]
    resp = await client.post(
        URL, json=body(subject=f"Re: [{number}] más datos"), headers=auth(token)
    )
    assert resp.status == 201
    assert await resp.json() == {"case": {"number": number}, "status": "continued"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sender": {"name": "Sin contacto"}}, "sender.email"),
        ({"sender": {"email": "juan@"}}, "sender.email"),
        ({"sender": {"phone": "abc"}}, "sender.phone"),
        ({"sender": "juan@example.com"}, "sender"),
        ({"text": ""}, "text"),
        ({"text": 42}, "text"),
        ({"category": "Inventada"}, "category"),
        ({"subreason": "Sugerencia"}, "subreason"),
        ({"language": "fr"}, "language"),
        ({"external_id": "has space"}, "external_id"),
    ],
)
async def test_validation_errors(
    client: Client,
    services: Services,
    make_token: TokenFactory,
    overrides: dict[str, Any],
    field: str,
) -> None:
    resp = await client.post(URL, json=body(**overrides), headers=auth(await make_token("intake")))
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    assert field in error["fields"]
    assert await cases(services) == 0


async def test_any_category_in_use_not_only_portal_ones(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    token = await make_token("intake")
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Category)
            .where(Category.name == "Problema Grave")
            .values(available_web_portal=False)
        )
        await session.execute(
            update(Category).where(Category.name == "Problema menor").values(in_use=False)
        )
    await services.catalog.refresh()
    ok = await client.post(URL, json=body(subreason="Se quemó el módem"), headers=auth(token))
    assert ok.status == 201
    unused = await client.post(URL, json=body(category="Problema menor"), headers=auth(token))
    assert unused.status == 422
    assert "category" in (await unused.json())["error"]["fields"]


async def test_language_and_phone_only_sender(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    data = body(sender={"phone": "+44 20 7946 0958"}, language="en-GB")
    resp = await client.post(URL, json=data, headers=auth(await make_token("intake")))
    assert resp.status == 201
    async with services.db.session() as session:
        case = (await session.scalars(select(Case))).one()
        ack = (
            await session.scalars(select(Notification).where(Notification.audience == "customer"))
        ).one()
    assert (case.language, case.contact) == ("en", "+442079460958")
    assert (ack.channel, ack.language) == ("sms", "en")


async def test_bad_bodies(client: Client, make_token: TokenFactory) -> None:
    headers = auth(await make_token("intake"))
    resp = await client.post(URL, data="hola", headers={**headers, "Content-Type": "text/plain"})
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    for raw in (b"{", b'"text"'):
        resp = await client.post(
            URL, data=raw, headers={**headers, "Content-Type": "application/json"}
        )
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "malformed_json"
    resp = await client.post(URL, json=body(text="x" * 600_000), headers=headers)
    assert resp.status == 413


async def test_failed_routing_answers_202(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    token = await make_token("intake")
    async with broken_routing(services):
        resp = await client.post(URL, json=body(), headers=auth(token))
    assert resp.status == 202
    assert (await resp.json())["status"] == "failed"
    async with services.db.session() as session:
        assert (await session.scalars(select(Inbound.status))).one() == "failed"


async def test_unknown_fields_are_refused_by_name(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    token = await make_token("intake")
    sender = {"name": "Juan", "email": "juan@example.com", "nmae": "J.", "mobile": "1"}
    data = body(categroy="Problema menor", sender=sender)
    resp = await client.post(URL, json=data, headers=auth(token, **{"Accept-Language": "en"}))
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    fields = error["fields"]
    assert set(fields) == {"categroy", "sender.nmae", "sender.mobile"}
    assert fields["categroy"].startswith("Unknown field; did you mean category?")
    known = "category, external_id, language, sender, subject, subreason, text"
    assert fields["categroy"].endswith(f"Known fields: {known}.")
    assert "did you mean sender.name?" in fields["sender.nmae"]
    assert fields["sender.mobile"] == (
        "Unknown field. Known fields: sender.email, sender.name, sender.phone."
    )
    # Named together with the other problems, in the language asked for (es by default).
    resp = await client.post(URL, json=body(text="", urgente=True), headers=auth(token))
    fields = (await resp.json())["error"]["fields"]
    assert set(fields) == {"text", "urgente"}
    assert fields["urgente"].startswith("Campo desconocido. Campos conocidos: category,")
    assert await cases(services) == 0


async def test_every_known_field_is_accepted(
    client: Client, services: Services, make_token: TokenFactory
) -> None:
    data = body(
        external_id="crm-1",
        sender={"name": "Juan", "email": "juan@example.com", "phone": "+54 11 4321-5678"},
        category="Problema menor",
        subreason="Servicio lento",
        language="es",
    )
    resp = await client.post(URL, json=data, headers=auth(await make_token("intake")))
    assert resp.status == 201, await resp.text()


async def test_a_flood_of_unknown_keys_gets_a_bounded_answer(
    client: Client, make_token: TokenFactory
) -> None:
    data = body(**{f"k{i}": i for i in range(5000)})
    resp = await client.post(URL, json=data, headers=auth(await make_token("intake")))
    assert resp.status == 422
    assert len((await resp.json())["error"]["fields"]) == 20
