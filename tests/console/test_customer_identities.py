"""One customer across channels, on SQLite (writer process) and PostgreSQL: an operator adds
an identity (normalized; one held by another customer is refused naming them), a message
on that identity then lands on the customer, and merging two customers moves their cases,
identities and notifications, with an event on every case moved."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from config.app import Services
from intake.message import Address, Channel, InboundMessage
from storage.models import Case, CaseEvent, Customer, Notification
from tests.conftest import TokenFactory
from tests.console.test_case_operations import api_for, new_case

Client = TestClient[Any, Any]


async def customer_of(services: Services, number: str) -> int:
    async with services.db.session() as session:
        found = await session.scalar(select(Case.customer_id).where(Case.number == number))
        assert found is not None
        return int(found)


async def test_an_identity_added_by_an_operator_links_later_messages(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services, "ana@example.com")
    ana = await customer_of(services, number)
    agent = await api_for(client, make_token, "agent")
    status, body, _ = await agent.call(
        "POST", f"/api/v1/customers/{ana}/identities", {"kind": "phone", "value": "011 5555-0101"}
    )
    assert status == 201, body
    assert {"kind": "phone", "value": "+541155550101"} in body["identities"]
    status, body, _ = await agent.call(
        "POST", f"/api/v1/customers/{ana}/identities", {"kind": "telegram", "value": "424242"}
    )
    assert status == 201
    # A text from that number and a chat from that user are Ana's.
    for msg in (
        InboundMessage(Channel.SMS, f"SM{uuid.uuid4().hex}", Address(phone="+541155550101"),
                       b"raw", text="hola"),
        InboundMessage(Channel.TELEGRAM, f"tg-{uuid.uuid4().hex}",
                       Address(telegram_id="424242"), b"raw", text="hola"),
    ):  # fmt: skip
        result = await services.writer.accept(msg)
        assert result.case_number is not None
        assert await customer_of(services, result.case_number) == ana
    # Refusals: malformed, unknown customer, held by someone else (named), idempotent again.
    assert (await agent.call("POST", f"/api/v1/customers/{ana}/identities",
                             {"kind": "email", "value": "no es correo"}))[0] == 422  # fmt: skip
    assert (await agent.call("POST", "/api/v1/customers/999999/identities",
                             {"kind": "telegram", "value": "1"}))[0] == 404  # fmt: skip
    beto = await customer_of(services, await new_case(services, "beto@example.com"))
    status, body, _ = await agent.call(
        "POST", f"/api/v1/customers/{beto}/identities", {"kind": "telegram", "value": "424242"}
    )
    assert status == 409 and str(ana) in body["error"]["message"]
    again = await agent.call(
        "POST", f"/api/v1/customers/{ana}/identities", {"kind": "telegram", "value": "424242"}
    )
    assert again[0] == 201


async def test_merging_customers_moves_cases_identities_and_messages(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    first = await new_case(services, "carla@example.com")
    second = await new_case(services, "carla.trabajo@example.com")
    keep, gone = await customer_of(services, first), await customer_of(services, second)
    ops = await api_for(client, make_token, "ops")
    agent = await api_for(client, make_token, "agent")
    path = f"/api/v1/customers/{gone}/merge"
    assert (await agent.call("POST", path, {"into": keep}))[0] == 403
    assert (await ops.call("POST", path, {"into": gone}))[0] == 422
    assert (await ops.call("POST", path, {"into": 999999}))[0] == 404
    status, body, _ = await ops.call("POST", path, {"into": keep})
    assert status == 200, body
    assert body["id"] == keep and body["cases"] == 2
    assert {i["value"] for i in body["identities"]} == {
        "carla@example.com",
        "carla.trabajo@example.com",
    }
    assert (await ops.call("GET", f"/api/v1/customers/{gone}"))[0] == 404
    async with services.db.session() as session:
        assert await customer_of(services, second) == keep
        moved = await session.scalar(
            select(CaseEvent.detail).where(CaseEvent.kind == "customer_merged")
        )
        assert moved == {"customer": [gone, keep]}
        left = await session.scalar(
            select(func.count()).select_from(Notification).where(Notification.customer_id == gone)
        )
        assert left == 0
        assert await session.scalar(select(Customer.id).where(Customer.id == gone)) is None
    # Mail from the merged address now lands on the remaining customer.
    later = await new_case(services, "carla.trabajo@example.com")
    assert await customer_of(services, later) == keep
