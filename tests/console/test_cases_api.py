"""GET /api/v1/cases and /api/v1/cases/{number}: filters, pagination, detail, errors, roles."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.app import Services
from intake.message import AcceptResult, Address, Channel, InboundMessage
from tests.conftest import TokenFactory

Client = TestClient[Any, Any]


async def accept(
    services: Services,
    email: str = "ana@example.com",
    *,
    subject: str = "No tengo Internet",
    text: str = "Desde ayer no tengo conexión.",
    category: str = "Problema Grave",
    channel: Channel = Channel.API,
) -> AcceptResult:
    result = await services.writer.accept(
        InboundMessage(
            channel=channel,
            external_id=uuid.uuid4().hex,
            sender=Address(name="Ana Pérez", email=email),
            raw=b"raw",
            subject=subject,
            text=text,
            category=category,
        )
    )
    assert result.outcome in ("created", "continued"), result
    return result


async def get(client: Client, token: str, path: str, **params: str) -> tuple[int, Any]:
    response = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def list_numbers(client: Client, token: str, **params: str) -> list[str]:
    status, body = await get(client, token, "/api/v1/cases", **params)
    assert status == 200, body
    return [item["number"] for item in body["items"]]


async def test_list_answers_items_with_resolved_names(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    created = await accept(services)
    status, body = await get(client, await make_token("agent"), "/api/v1/cases")
    assert status == 200
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item["number"] == created.case_number
    assert item["status"] == "Abierta"
    assert item["priority"] == "Normal"
    assert item["severity"] == "Medios"
    assert item["category"] == "Problema Grave"
    assert item["area"] == "Técnica"
    assert item["assignee"] == "Técnico de guardia"
    assert item["customer"]["name"] == "Ana Pérez"
    assert isinstance(item["customer"]["id"], int)
    assert item["contact"] == "ana@example.com"
    assert item["origin_channel"] == "api"
    assert item["created_at"].endswith("+00:00")
    assert {"title", "subreason", "updated_at"} <= item.keys()


async def test_each_filter_narrows_the_list(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    grave = await accept(services, "ana@example.com", category="Problema Grave")
    menor = await accept(services, "beto@example.com", category="Problema menor")
    web = await accept(
        services, "carla@example.com", category="Problema menor", channel=Channel.WEB
    )
    follow = await accept(
        services, "beto@example.com", subject=f"Re: [{menor.case_number}]", text="Cable cortado"
    )
    assert follow.outcome == "continued"
    token = await make_token("ops")
    assert await list_numbers(client, token, status="Abierta") == [
        web.case_number,
        menor.case_number,
        grave.case_number,
    ]
    assert await list_numbers(client, token, status="Cerrada") == []
    assert await list_numbers(client, token, area="Técnica") == [grave.case_number]
    assert await list_numbers(client, token, assignee="Mesa de ayuda (turno)") == [
        web.case_number,
        menor.case_number,
    ]
    assert await list_numbers(client, token, channel="web") == [web.case_number]
    assert await list_numbers(client, token, customer="beto@example.com") == [menor.case_number]
    assert await list_numbers(client, token, q="cable CORTADO") == [menor.case_number]


async def test_cursor_pagination_over_seven_cases(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    created = [(await accept(services, f"c{i}@example.com")).case_number for i in range(7)]
    token = await make_token("admin")
    seen: list[str] = []
    params = {"limit": "3"}
    for _page in range(3):
        status, body = await get(client, token, "/api/v1/cases", **params)
        assert status == 200
        assert len(body["items"]) <= 3
        seen += [item["number"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert body["next_cursor"] is None
    assert seen == list(reversed(created))


async def test_case_detail_with_timeline(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    created = await accept(services, text="El módem no enciende")
    status, body = await get(
        client, await make_token("agent"), f"/api/v1/cases/{created.case_number}"
    )
    assert status == 200
    assert body["number"] == created.case_number
    assert body["description"] == "El módem no enciende"
    assert body["area"] == "Técnica"
    assert body["customer"]["identities"] == [{"kind": "email", "value": "ana@example.com"}]
    for key in ("tags", "cc", "is_public", "parent", "merged_into", "solution", "language"):
        assert key in body
    timeline = body["timeline"]
    assert [e["type"] for e in timeline] == ["message", "event", "event"]
    message = timeline[0]
    assert message["direction"] == "in"
    assert message["text"] == "El módem no enciende"
    assert message["subject"] == "No tengo Internet"
    assert message["attachments"] == []
    assert [e["kind"] for e in timeline[1:]] == ["created", "routed"]
    assert any("Técnica" in reason for reason in timeline[2]["detail"]["reasons"])


async def test_unknown_case_is_404_json(client: Client, make_token: TokenFactory) -> None:
    status, body = await get(client, await make_token("ops"), "/api/v1/cases/CAS-424242")
    assert status == 404
    assert body["error"]["code"] == "not_found"
    assert "CAS-424242" in body["error"]["message"]


async def test_without_token_is_401(client: Client) -> None:
    for path in ("/api/v1/cases", "/api/v1/cases/CAS-000001"):
        response = await client.get(path)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_intake_role_is_403(client: Client, make_token: TokenFactory) -> None:
    token = await make_token("intake")
    for path in ("/api/v1/cases", "/api/v1/cases/CAS-000001"):
        status, body = await get(client, token, path)
        assert status == 403
        assert body["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"status": "Inexistente"}, "status"),
        ({"area": "Inexistente"}, "area"),
        ({"assignee": "Nadie"}, "assignee"),
        ({"stauts": "Abierta"}, "stauts"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: Client, make_token: TokenFactory, params: dict[str, str], param: str
) -> None:
    status, body = await get(client, await make_token("ops"), "/api/v1/cases", **params)
    assert status == 400
    assert body["error"]["param"] == param
    assert body["error"]["message"]


async def test_limit_200_is_accepted(client: Client, make_token: TokenFactory) -> None:
    status, body = await get(client, await make_token("ops"), "/api/v1/cases", limit="200")
    assert (status, body) == (200, {"items": [], "next_cursor": None})
