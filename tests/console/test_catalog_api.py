"""/api/v1/catalog/{kind}: CRUD of the six kinds with seed 004's fields, one default per
kind, unique names, deletion of items in use (refused, or with a replacement everywhere),
changes seen by the next inbound message, and who may read and write."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import delete

from cases.catalog_edit import BUMP_VERSION
from cases.catalog_fields import DEFAULTS
from config.app import Services
from console.catalog_schemas import CREATE
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.models import Severity
from tests.conftest import TokenFactory

Client = TestClient[Any, Any]
BASE = "/api/v1/catalog"

# A new item of each kind with every field given (seed 004); categories and technicians
# refer to the area created first.
NEW_ITEMS: dict[str, dict[str, Any]] = {
    "areas": {"name": "Soporte remoto", "is_default": False},
    "statuses": {"name": "Trabajando", "kind": "pending", "rank": 9, "is_default": False},
    "priorities": {"name": "Crítico", "colour": "#b71c1c", "rank": 7, "is_default": False},
    "severities": {"name": "Bloqueante", "rank": 6, "is_default": False},
    "technicians": {
        "name": "Lucía Gómez",
        "email": "Lucia@Example.com",
        "phone": "+54 11 5555 0101",
        "language": "en",
        "areas": ["Soporte remoto", "Técnica"],
        "available": False,
    },
    "categories": {
        "name": "Instalación",
        "comment": "Altas de servicio nuevas",
        "price": 1500.5,
        "area": "Soporte remoto",
        "technician": "Lucía Gómez",
        "in_use": False,
        "available_technician_app": True,
        "available_customer_app": False,
        "available_web_portal": False,
        "customer_description": "Quiero instalar el servicio",
        "colour": "#00aa88",
        "subreasons": ["Alta nueva", "Mudanza", "Otros"],
        "is_default": False,
    },
}
# What the API answers for them (normalized values).
NORMALIZED: dict[str, dict[str, Any]] = {
    "technicians": {"email": "lucia@example.com", "areas": ["Técnica", "Soporte remoto"]},
    "priorities": {"colour": "#B71C1C"},
    "categories": {"colour": "#00AA88"},
}
# One change per kind, and what the item then shows.
CHANGES: dict[str, dict[str, Any]] = {
    "areas": {"name": "Soporte a distancia"},
    "statuses": {"kind": "closed", "rank": 2},
    "priorities": {"colour": "#000000", "rank": 8},
    "severities": {"name": "Bloqueante total", "rank": 5},
    "technicians": {"areas": ["Gerencia"], "phone": None, "available": True},
    "categories": {"price": None, "technician": None, "subreasons": "Uno; dos ;uno"},
}
CHANGED: dict[str, dict[str, Any]] = {
    # The area was renamed above: references are by id, shown by the current name.
    "categories": {
        "price": None,
        "technician": None,
        "subreasons": ["Uno", "dos"],
        "area": "Soporte a distancia",
    },
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    client: Client, token: str, method: str, path: str, body: Any = None, **params: str
) -> tuple[int, Any]:
    response = await client.request(
        method, BASE + path, json=body, params=params, headers=auth(token)
    )
    if response.status == 204:
        return 204, None
    return response.status, await response.json()


async def items(client: Client, token: str, kind: str) -> list[dict[str, Any]]:
    status, body = await call(client, token, "GET", f"/{kind}", limit="200")
    assert status == 200, body
    found: list[dict[str, Any]] = body["items"]
    return found


async def by_name(client: Client, token: str, kind: str, name: str) -> dict[str, Any]:
    [item] = [i for i in await items(client, token, kind) if i["name"] == name]
    return item


async def accept(services: Services, category: str = "Problema Grave") -> AcceptResult:
    result = await services.writer.accept(
        InboundMessage(
            channel=Channel.API,
            external_id=uuid.uuid4().hex,
            sender=Address(name="Ana Pérez", email="ana@example.com"),
            raw=b"raw",
            subject="No tengo Internet",
            text="Desde ayer no tengo conexión.",
            category=category,
        )
    )
    assert result.outcome == "created", result
    return result


async def case_of(client: Client, token: str, number: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/cases/{number}", headers=auth(token))
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


# --- CRUD ----------------------------------------------------------------------------------


async def test_crud_of_every_kind_with_every_field(
    client: Client, make_token: TokenFactory
) -> None:
    admin = await make_token("admin")
    created: dict[str, int] = {}
    for kind in ("areas", "statuses", "priorities", "severities", "technicians", "categories"):
        status, body = await call(client, admin, "POST", f"/{kind}", NEW_ITEMS[kind])
        assert status == 201, (kind, body)
        expected = {**NEW_ITEMS[kind], **NORMALIZED.get(kind, {})}
        assert body == {"id": body["id"], **expected}, kind
        created[kind] = body["id"]
        status, fetched = await call(client, admin, "GET", f"/{kind}/{body['id']}")
        assert (status, fetched) == (200, body)
        assert body in await items(client, admin, kind)

    for kind, change in CHANGES.items():
        item_id = created[kind]
        status, body = await call(client, admin, "PATCH", f"/{kind}/{item_id}", change)
        assert status == 200, (kind, body)
        before = {**NEW_ITEMS[kind], **NORMALIZED.get(kind, {})}
        assert body == {"id": item_id, **before, **change, **CHANGED.get(kind, {})}, kind

    # Categories first: the area and the technician are in use while the category is.
    for kind in ("categories", "technicians", "areas", "statuses", "priorities", "severities"):
        status, _ = await call(client, admin, "DELETE", f"/{kind}/{created[kind]}")
        assert status == 204, kind
        status, body = await call(client, admin, "GET", f"/{kind}/{created[kind]}")
        assert status == 404 and body["error"]["code"] == "not_found", kind


async def test_invalid_values_are_422_naming_the_field(
    client: Client, make_token: TokenFactory
) -> None:
    admin = await make_token("admin")
    status, body = await call(client, admin, "POST", "/priorities", {"name": "X", "colour": "red"})
    assert status == 422 and "colour" in body["error"]["fields"]
    status, body = await call(
        client, admin, "POST", "/categories", {"name": "X", "area": "No existe"}
    )
    assert status == 422 and "No existe" in body["error"]["message"]
    status, body = await call(client, admin, "POST", "/areas", {"name": "X", "colour": "#000000"})
    assert status == 422 and "colour" in body["error"]["fields"]
    status, body = await call(
        client, admin, "POST", "/technicians", {"name": "X", "email": "no es correo"}
    )
    assert status == 422 and "email" in body["error"]["message"]
    names = [i["name"] for i in await items(client, admin, "categories")]
    assert "X" not in names


def test_create_bodies_default_to_the_catalogs_defaults() -> None:
    # What the API fills in is what a catalog file leaves out means (cases.catalog_fields).
    for kind, model in CREATE.items():
        for name, info in model.model_fields.items():
            if name != "name":
                assert info.get_default() == DEFAULTS[name], (kind, name)


# --- defaults and names --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["areas", "statuses", "priorities", "severities", "categories"])
async def test_exactly_one_default_per_kind(
    client: Client, make_token: TokenFactory, kind: str
) -> None:
    admin = await make_token("admin")
    [old] = [i for i in await items(client, admin, kind) if i["is_default"]]
    status, new = await call(
        client, admin, "POST", f"/{kind}", {"name": "Nuevo", "is_default": True}
    )
    assert status == 201 and new["is_default"] is True
    defaults = [i["name"] for i in await items(client, admin, kind) if i["is_default"]]
    assert defaults == ["Nuevo"]

    # Unsetting the only default is refused; the old one can be made default again.
    status, body = await call(client, admin, "PATCH", f"/{kind}/{new['id']}", {"is_default": False})
    assert status == 422 and "is_default" in body["error"]["fields"]
    status, body = await call(client, admin, "PATCH", f"/{kind}/{old['id']}", {"is_default": True})
    assert status == 200 and body["is_default"] is True
    defaults = [i["name"] for i in await items(client, admin, kind) if i["is_default"]]
    assert defaults == [old["name"]]

    # The default cannot be deleted without a successor, which then becomes the default.
    status, body = await call(client, admin, "PATCH", f"/{kind}/{new['id']}", {"is_default": True})
    assert status == 200
    status, body = await call(client, admin, "DELETE", f"/{kind}/{new['id']}")
    assert status == 409 and "the default" in body["error"]["message"]
    status, _ = await call(
        client, admin, "DELETE", f"/{kind}/{new['id']}", replace_with=str(old["id"])
    )
    assert status == 204
    defaults = [i["name"] for i in await items(client, admin, kind) if i["is_default"]]
    assert defaults == [old["name"]]


async def test_the_first_item_of_a_kind_becomes_its_default(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(delete(Severity))  # no case uses them yet
        await session.execute(BUMP_VERSION)
    admin = await make_token("admin")
    status, first = await call(client, admin, "POST", "/severities", {"name": "Única"})
    assert status == 201 and first["is_default"] is True
    status, second = await call(client, admin, "POST", "/severities", {"name": "Otra"})
    assert status == 201 and second["is_default"] is False


async def test_the_default_status_cannot_be_closed(
    client: Client, make_token: TokenFactory
) -> None:
    admin = await make_token("admin")
    status, body = await call(
        client, admin, "POST", "/statuses", {"name": "Fin", "kind": "closed", "is_default": True}
    )
    assert status == 422
    default = await by_name(client, admin, "statuses", "Abierta")
    status, body = await call(
        client, admin, "PATCH", f"/statuses/{default['id']}", {"kind": "closed"}
    )
    assert status == 422 and "kind" in body["error"]["fields"]


async def test_duplicate_names_are_409(client: Client, make_token: TokenFactory) -> None:
    admin = await make_token("admin")
    for kind, taken in (("areas", "Técnica"), ("priorities", "urgente"), ("technicians",
                        "Técnico de guardia"), ("categories", "  Problema   grave ")):  # fmt: skip
        status, body = await call(client, admin, "POST", f"/{kind}", {"name": taken})
        assert status == 409, (kind, body)
        assert body["error"]["code"] == "conflict"
    other = await by_name(client, admin, "areas", "Gerencia")
    status, body = await call(client, admin, "PATCH", f"/areas/{other['id']}", {"name": "TÉCNICA"})
    assert status == 409
    status, body = await call(client, admin, "PATCH", f"/areas/{other['id']}", {"name": "gerencia"})
    assert status == 200 and body["name"] == "gerencia"  # its own name, another spelling


# --- deleting items in use -----------------------------------------------------------------


async def test_deleting_items_in_use_needs_a_replacement_that_takes_their_place(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    numbers = [(await accept(services)).case_number for _ in range(2)]
    assert all(n is not None for n in numbers)
    case = await case_of(client, agent, str(numbers[0]))
    used = {
        "areas": case["area"],
        "statuses": case["status"],
        "priorities": case["priority"],
        "severities": case["severity"],
        "categories": case["category"],
        "technicians": case["assignee"],
    }
    assert used["areas"] == "Técnica" and used["technicians"] == "Técnico de guardia"
    field_of = {
        "areas": "area",
        "statuses": "status",
        "priorities": "priority",
        "severities": "severity",
        "categories": "category",
        "technicians": "assignee",
    }
    for kind, name in used.items():
        item = await by_name(client, admin, kind, name)
        status, body = await call(client, admin, "DELETE", f"/{kind}/{item['id']}")
        assert status == 409, kind
        assert "replace_with" in body["error"]["message"]
        assert await by_name(client, admin, kind, name) == item  # nothing changed
        status, replacement = await call(
            client, admin, "POST", f"/{kind}", {"name": f"Nuevo {field_of[kind]}"}
        )
        assert status == 201
        status, body = await call(
            client, admin, "DELETE", f"/{kind}/{item['id']}", replace_with=str(item["id"])
        )
        assert status == 422, kind  # itself is no replacement
        status, _ = await call(
            client,
            admin,
            "DELETE",
            f"/{kind}/{item['id']}",
            replace_with=str(replacement["id"]),
        )
        assert status == 204, kind
        if item.get("is_default"):
            assert (await by_name(client, admin, kind, replacement["name"]))["is_default"]
        if kind == "areas":  # the category and technician that used it now use its successor
            category = await by_name(client, admin, "categories", used["categories"])
            assert category["area"] == "Nuevo area"
            tech = await by_name(client, admin, "technicians", used["technicians"])
            assert tech["areas"] == ["Nuevo area"]

    for number in numbers:
        case = await case_of(client, agent, str(number))
        events = [e for e in case["timeline"] if e["type"] == "event" and e["kind"] == "updated"]
        for kind, name in used.items():
            field = field_of[kind]
            assert case[field] == f"Nuevo {field}", (number, field)
            [event] = [e for e in events if field in e["detail"]["changes"]]
            assert event["detail"]["changes"][field] == {"before": name, "after": f"Nuevo {field}"}
            assert event["actor"].startswith("test-admin-")


# --- routing sees the change ---------------------------------------------------------------


async def test_a_catalog_change_routes_the_next_message(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    admin, agent = await make_token("admin"), await make_token("agent")
    first = await case_of(client, agent, str((await accept(services)).case_number))
    assert (first["area"], first["assignee"]) == ("Técnica", "Técnico de guardia")

    status, _ = await call(
        client, admin, "POST", "/technicians", {"name": "Rosa", "areas": ["Administración"]}
    )
    assert status == 201
    grave = await by_name(client, admin, "categories", "Problema Grave")
    status, _ = await call(
        client,
        admin,
        "PATCH",
        f"/categories/{grave['id']}",
        {"area": "Administración", "technician": "Rosa"},
    )
    assert status == 200
    status, _ = await call(
        client, admin, "POST", "/priorities", {"name": "Top", "is_default": True}
    )
    assert status == 201

    second = await case_of(client, agent, str((await accept(services)).case_number))
    assert (second["area"], second["assignee"], second["priority"]) == (
        "Administración",
        "Rosa",
        "Top",
    )


# --- roles ---------------------------------------------------------------------------------


async def test_agents_and_ops_read_only_admins_write_intake_nothing(
    client: Client, make_token: TokenFactory
) -> None:
    admin = await make_token("admin")
    area = await by_name(client, admin, "areas", "Gerencia")
    for role in ("agent", "ops"):
        token = await make_token(role)
        for kind in ("areas", "statuses", "priorities", "severities", "categories", "technicians"):
            status, body = await call(client, token, "GET", f"/{kind}")
            assert status == 200 and body["items"], (role, kind)
        assert (await call(client, token, "GET", f"/areas/{area['id']}"))[0] == 200
        for method, path, body in (
            ("POST", "/areas", {"name": "Nueva"}),
            ("PATCH", f"/areas/{area['id']}", {"name": "Otra"}),
            ("DELETE", f"/areas/{area['id']}", None),
        ):
            status, answer = await call(client, token, method, path, body)
            assert status == 403, (role, method)
            assert answer["error"]["code"] == "forbidden"
    intake = await make_token("intake")
    assert (await call(client, intake, "GET", "/areas"))[0] == 403
    assert (await call(client, intake, "POST", "/areas", {"name": "Nueva"}))[0] == 403
    response = await client.get(BASE + "/areas")
    assert response.status == 401
    assert await by_name(client, admin, "areas", "Gerencia") == area
    assert "Nueva" not in [a["name"] for a in await items(client, admin, "areas")]


async def test_listing_pages_with_a_cursor(client: Client, make_token: TokenFactory) -> None:
    agent = await make_token("agent")
    status, first = await call(client, agent, "GET", "/statuses", limit="3")
    assert status == 200 and len(first["items"]) == 3 and first["next_cursor"]
    status, rest = await call(client, agent, "GET", "/statuses", cursor=first["next_cursor"])
    names = [i["name"] for i in first["items"] + rest["items"]]
    assert rest["next_cursor"] is None
    assert sorted(names) == sorted(i["name"] for i in await items(client, agent, "statuses"))
    assert len(names) == 7
