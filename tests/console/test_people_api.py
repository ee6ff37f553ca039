"""Customers (search, detail, interaction history) and tokens (admin) through the API."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from config.app import Services
from intake.message import Address, Channel, InboundMessage
from tests.conftest import TokenFactory
from tests.console.test_case_operations import Api, api_for

Client = TestClient[Any, Any]


async def message(services: Services, sender: Address, subject: str, **extra: Any) -> str:
    result = await services.writer.accept(
        InboundMessage(
            channel=extra.pop("channel", Channel.API),
            external_id=uuid.uuid4().hex,
            sender=sender,
            raw=b"raw",
            subject=subject,
            text=f"Texto de {subject}",
            **extra,
        )
    )
    assert result.case_number
    return result.case_number


async def test_search_detail_and_timeline(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    ana = Address(name="Ana Pérez", email="ana@example.com", phone="+5491155550101")
    first = await message(services, ana, "Sin Internet")
    second = await message(services, ana, "Factura duplicada")
    await message(services, Address(name="Beto", email="beto@example.com"), "Otro")
    api = await api_for(client, make_token)
    await api.call("PATCH", f"/api/v1/cases/{second}", {"status": "Cerrada"})

    for q in ("pérez", "ANA@example", "+54 9 11 5555", "5555 0101"):
        status, found, _ = await api.call("GET", f"/api/v1/customers?q={q}")
        assert status == 200 and [c["name"] for c in found["items"]] == ["Ana Pérez"], q
    _, everyone, _ = await api.call("GET", "/api/v1/customers?limit=1")
    assert len(everyone["items"]) == 1 and everyone["next_cursor"]
    customer_id = found["items"][0]["id"]

    status, detail, _ = await api.call("GET", f"/api/v1/customers/{customer_id}")
    assert status == 200
    assert {(i["kind"], i["value"]) for i in detail["identities"]} == {
        ("email", "ana@example.com"),
        ("phone", "+5491155550101"),
    }
    assert (detail["cases"], detail["open_cases"]) == (2, 1)
    assert [c["number"] for c in detail["open"]] == [first]

    status, page, _ = await api.call("GET", f"/api/v1/customers/{customer_id}/timeline?limit=3")
    assert status == 200 and len(page["items"]) == 3 and page["next_cursor"]
    entries = page["items"]
    while page["next_cursor"]:
        _, page, _ = await api.call(
            "GET", f"/api/v1/customers/{customer_id}/timeline?limit=3&cursor={page['next_cursor']}"
        )
        entries += page["items"]
    times = [e["at"] for e in entries]
    assert times == sorted(times, reverse=True)
    kinds = {(e["type"], e["case"]) for e in entries}
    # Both cases, each one's inbound message, the acknowledgements and the notice that the
    # second was closed (outbound); the technicians' notices are not the customer's.
    assert {("case", first), ("case", second), ("message", first), ("message", second)} <= kinds
    assert {e["direction"] for e in entries if e["type"] == "notification"} == {"out"}
    assert len({(e["type"], e["id"]) for e in entries}) == len(entries)  # no repeats

    status, _, _ = await api.call("GET", "/api/v1/customers/999999")
    assert status == 404
    status, _, _ = await api.call("GET", "/api/v1/customers/999999/timeline")
    assert status == 404
    status, body, _ = await api.call("GET", f"/api/v1/customers/{customer_id}/timeline?cursor=x")
    assert status == 400 and body["error"]["param"] == "cursor"


async def test_tokens_are_admin_only_and_revocation_is_immediate(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    admin = await api_for(client, make_token, "admin")
    ops = await api_for(client, make_token, "ops")
    assert (await ops.call("GET", "/api/v1/tokens"))[0] == 403
    status, created, _ = await admin.call(
        "POST", "/api/v1/tokens", {"name": "crm", "role": "intake"}
    )
    assert status == 201 and created["token"].startswith("vt_") and created["user"] == "crm"
    status, body, _ = await admin.call("POST", "/api/v1/tokens", {"name": "x", "role": "boss"})
    assert status == 422 and "role" in body["error"]["fields"]
    crm = Api(client, created["token"])
    assert (await crm.call("GET", "/api/v1/"))[0] == 200
    _, listing, _ = await admin.call("GET", "/api/v1/tokens")
    assert created["id"] in [t["id"] for t in listing["items"]]
    assert all("token" not in t for t in listing["items"])
    status, revoked, _ = await admin.call("DELETE", f"/api/v1/tokens/{created['id']}")
    assert status == 200 and revoked["revoked_at"]
    assert (await crm.call("GET", "/api/v1/"))[0] == 401  # not after the cache's 30 s
    assert (await admin.call("DELETE", "/api/v1/tokens/999999"))[0] == 404


async def test_root_links_and_public_openapi(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    api = await api_for(client, make_token)
    status, root, _ = await api.call("GET", "/api/v1/")
    assert status == 200 and root["links"]["openapi"] == "/api/v1/openapi.json"
    response = await client.get("/api/v1/openapi.json")
    spec = await response.json()
    assert response.status == 200 and spec["openapi"] == "3.1.0"
    for path in ("/api/v1/cases/{number}", "/api/v1/customers/{id}/timeline",
                 "/api/v1/catalog/categories/{id}", "/api/v1/tokens", "/api/v1/intake",
                 "/form", "/readyz"):  # fmt: skip
        assert path in spec["paths"], path
    patch = spec["paths"]["/api/v1/cases/{number}"]["patch"]
    assert {"200", "412", "422", "401", "403", "404"} <= set(patch["responses"])
