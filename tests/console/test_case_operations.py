"""Case operations through the API: PATCH with ETag/If-Match, notes, merge, clone, parents.

Runs on SQLite (writer process, as the daemon) and PostgreSQL. Every change must be an
event with the token's user as actor and the values before and after.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from config.app import Services
from intake.message import Address, Channel, InboundMessage
from storage.models import Notification
from tests.conftest import TokenFactory

Client = TestClient[Any, Any]


async def new_case(services: Services, email: str = "ana@example.com", **extra: Any) -> str:
    fields: dict[str, Any] = {"subject": f"Consulta {uuid.uuid4().hex[:6]}", **extra}
    result = await services.writer.accept(
        InboundMessage(
            channel=Channel.API,
            external_id=uuid.uuid4().hex,
            sender=Address(name="Ana", email=email),
            raw=b"raw",
            text="Sin servicio.",
            **fields,
        )
    )
    assert result.case_number
    return result.case_number


async def notification_count(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Notification)) or 0)


class Api:
    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any, Any]:
        response = await self.client.request(
            method, path, json=body, headers={**self.headers, **headers}
        )
        data = await response.json() if response.content_type == "application/json" else None
        return response.status, data, response.headers


async def api_for(client: Client, make_token: TokenFactory, role: str = "agent") -> Api:
    return Api(client, await make_token(role))


async def test_patch_changes_fields_and_records_who_and_what(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services)
    api = await api_for(client, make_token)
    status, before, headers = await api.call("GET", f"/api/v1/cases/{number}")
    assert status == 200 and headers["ETag"] == '"1"' and before["version"] == 1
    status, after, headers = await api.call(
        "PATCH",
        f"/api/v1/cases/{number}",
        {
            "status": "En Progreso",
            "priority": "alta",  # catalog names are matched without regard to case
            "assignee": "Técnico de guardia",
            "tags": ["vip", "fibra", "vip"],
            "cc": ["Jefe@Example.com"],
            "is_public": False,
            "solution": "Se reinició el equipo.",
        },
        **{"If-Match": '"1"'},
    )
    assert status == 200, after
    assert headers["ETag"] == '"2"' and after["version"] == 2
    assert (after["status"], after["priority"], after["assignee"]) == (
        "En Progreso",
        "Alta",
        "Técnico de guardia",
    )
    assert after["tags"] == ["vip", "fibra"] and after["cc"] == ["jefe@example.com"]
    assert after["is_public"] is False and after["solution"] == "Se reinició el equipo."
    assert "timeline" not in after  # a change answers the fields; the timeline is a GET
    _, read, _ = await api.call("GET", f"/api/v1/cases/{number}")
    [event] = [e for e in read["timeline"] if e["type"] == "event" and e["kind"] == "updated"]
    assert event["actor"].startswith("test-agent")
    changes = event["detail"]["changes"]
    assert changes["status"] == {"before": "Abierta", "after": "En Progreso"}
    assert changes["priority"] == {"before": "Normal", "after": "Alta"}
    assert changes["tags"] == {"before": [], "after": ["vip", "fibra"]}


async def test_closing_sets_closed_at_and_reopening_clears_it(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services)
    api = await api_for(client, make_token, "ops")
    _, closed, _ = await api.call("PATCH", f"/api/v1/cases/{number}", {"status": "Cerrada"})
    assert closed["status_kind"] == "closed" and closed["closed_at"] is not None
    _, reopened, _ = await api.call("PATCH", f"/api/v1/cases/{number}", {"status": "Abierta"})
    assert reopened["closed_at"] is None and reopened["version"] == 3


async def test_two_patches_with_the_same_etag_one_gets_412(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services)
    api = await api_for(client, make_token)
    results = await asyncio.gather(
        api.call("PATCH", f"/api/v1/cases/{number}", {"priority": "Alta"}, **{"If-Match": '"1"'}),
        api.call("PATCH", f"/api/v1/cases/{number}", {"priority": "Bajo"}, **{"If-Match": '"1"'}),
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 412], results
    loser = next(body for status, body, _ in results if status == 412)
    assert loser["error"]["code"] == "precondition_failed"
    winner = next(body for status, body, _ in results if status == 200)
    _, now, _ = await api.call("GET", f"/api/v1/cases/{number}")
    assert now["priority"] == winner["priority"] and now["version"] == 2
    # The stale one changed nothing: one update event only.
    assert sum(1 for e in now["timeline"] if e.get("kind") == "updated") == 1
    status, _, _ = await api.call(
        "PATCH", f"/api/v1/cases/{number}", {"priority": "Bajo"}, **{"If-Match": 'W/"1"'}
    )
    assert status == 412


async def test_bad_patches_get_422_naming_the_field_and_change_nothing(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services)
    api = await api_for(client, make_token)
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    cases = [
        ({"stauts": "Cerrada"}, "stauts"),
        ({"status": "Inexistente"}, "status"),
        ({"area": "Marketing"}, "area"),
        ({"assignee": "Nadie"}, "assignee"),
        ({"status": None}, "status"),
        ({"tags": "vip"}, "tags"),
        ({"cc": ["no es un correo"]}, "cc"),
        ({"reopen_at": past}, "reopen_at"),
        ({"reopen_at": "2030-01-01T10:00:00"}, "reopen_at"),  # no zone
        ({"parent": number}, "parent"),
        ({"parent": "CAS-999999"}, "parent"),
        ({"subreason": "Otra cosa", "category": "Problema Grave"}, "subreason"),
    ]
    for body, field in cases:
        status, answer, _ = await api.call("PATCH", f"/api/v1/cases/{number}", body)
        assert status in (422, 404), (body, status, answer)
        assert field in answer["error"].get("fields", {}), (body, answer)
    _, case, _ = await api.call("GET", f"/api/v1/cases/{number}")
    assert case["version"] == 1
    status, answer, _ = await api.call("PATCH", "/api/v1/cases/CAS-999999", {"priority": "Alta"})
    assert status == 404 and answer["error"]["code"] == "not_found"


async def test_parent_links_refuse_cycles(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    a, b, c = [await new_case(services, f"c{i}@example.com") for i in range(3)]
    api = await api_for(client, make_token)
    assert (await api.call("PATCH", f"/api/v1/cases/{b}", {"parent": a}))[0] == 200
    assert (await api.call("PATCH", f"/api/v1/cases/{c}", {"parent": b}))[0] == 200
    status, answer, _ = await api.call("PATCH", f"/api/v1/cases/{a}", {"parent": c})
    assert status == 422 and "cycle" in answer["error"]["fields"]["parent"]
    _, parent, _ = await api.call("GET", f"/api/v1/cases/{a}")
    assert parent["children"] == [b] and parent["parent"] is None
    _, child, _ = await api.call("PATCH", f"/api/v1/cases/{c}", {"parent": None})
    assert child["parent"] is None


async def test_notes_are_internal_events_never_notifications(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services)
    api = await api_for(client, make_token)
    queued = await notification_count(services)
    status, answer, _ = await api.call(
        "POST", f"/api/v1/cases/{number}/notes", {"text": "Llamé al cliente."}
    )
    assert status == 201, answer
    assert answer["event"]["kind"] == "note" and answer["event"]["detail"]["text"]
    assert answer["version"] == 1  # a note changes no field
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{number}/notes", {"text": ""})
    assert status == 422 and "text" in answer["error"]["fields"]
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{number}/notes", {"txt": "x"})
    assert status == 422 and "txt" in answer["error"]["fields"]
    assert await notification_count(services) == queued  # nothing for anyone


async def test_merge_moves_everything_and_later_mail_lands_on_the_target(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    source = await new_case(services, "uno@example.com", cc=())
    target = await new_case(services, "dos@example.com")
    api = await api_for(client, make_token)
    await api.call("PATCH", f"/api/v1/cases/{source}", {"tags": ["duplicado"]})
    await api.call("POST", f"/api/v1/cases/{source}/notes", {"text": "nota del origen"})
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{source}/merge", {"into": target})
    assert status == 200, answer
    _, merged, _ = await api.call("GET", f"/api/v1/cases/{source}")
    assert merged["merged_into"] == target and merged["status_kind"] == "closed"
    assert [e for e in merged["timeline"] if e["type"] == "message"] == []
    _, kept, _ = await api.call("GET", f"/api/v1/cases/{target}")
    messages = [e for e in kept["timeline"] if e["type"] == "message"]
    notes = [e for e in kept["timeline"] if e.get("kind") == "note"]
    assert len(messages) == 2 and [n["detail"]["text"] for n in notes] == ["nota del origen"]
    assert "duplicado" in kept["tags"]
    # Mail for the source (its subject tag, from its customer) lands on the target.
    later = await services.writer.accept(
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=f"{uuid.uuid4().hex}@example.com",
            sender=Address(email="uno@example.com"),
            raw=b"raw",
            subject=f"Re: [{source}] sigue igual",
            text="Sigue igual.",
        )
    )
    assert (later.outcome, later.case_number) == ("continued", target)
    for body in ({"into": source}, {"into": target}):  # a merged case, itself
        status, answer, _ = await api.call("POST", f"/api/v1/cases/{target}/merge", body)
        assert status == 422 and "into" in answer["error"]["fields"], answer
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{source}/merge", {"into": target})
    assert status == 409
    other = await new_case(services, "tres@example.com")
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{other}/merge", {"into": source})
    assert status == 422 and "into" in answer["error"]["fields"]
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{other}/merge", {"into": other})
    assert status == 422


async def test_clone_copies_fields_and_links_to_the_original(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services, category="Problema Grave")
    api = await api_for(client, make_token)
    await api.call("PATCH", f"/api/v1/cases/{number}", {"tags": ["fibra"], "priority": "Alta"})
    status, answer, headers = await api.call(
        "POST", f"/api/v1/cases/{number}/clone", {"area": "Administración"}
    )
    assert status == 201, answer
    clone = answer["created"]
    assert clone != number and headers["Location"] == f"/api/v1/cases/{clone}"
    _, copy, _ = await api.call("GET", f"/api/v1/cases/{clone}")
    _, original, _ = await api.call("GET", f"/api/v1/cases/{number}")
    for field in ("title", "priority", "category", "tags", "customer", "status"):
        assert copy[field] == original[field], field
    assert copy["area"] == "Administración" and copy["cloned_from"] == number
    assert [e for e in copy["timeline"] if e["type"] == "message"] == []
    assert any(e.get("kind") == "cloned_to" for e in original["timeline"])
    status, _, _ = await api.call("POST", f"/api/v1/cases/{number}/clone")
    assert status == 201


async def test_roles_and_auth(services: Services, client: Client, make_token: TokenFactory) -> None:
    number = await new_case(services)
    intake = await api_for(client, make_token, "intake")
    status, _, _ = await intake.call("PATCH", f"/api/v1/cases/{number}", {"priority": "Alta"})
    assert status == 403
    nobody = Api(client, "vt_wrong")
    status, _, _ = await nobody.call("POST", f"/api/v1/cases/{number}/notes", {"text": "x"})
    assert status == 401
