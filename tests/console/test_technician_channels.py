"""A technician's channels through the API: replaced as a whole ordered list, checked entry
by entry (the field at fault named), read back; the next assignment notice goes on the
first channel with the others as its fallback. Push addresses are checked against the
configured providers."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from cases.technician_channels import ChannelEntry, checked_channels
from config.app import Services
from storage.models import Notification
from storage.operations import OperationRefused
from tests.conftest import TokenFactory
from tests.console.test_case_operations import api_for, new_case

Client = TestClient[Any, Any]


async def technician_id(api: Any, name: str) -> int:
    status, page, _ = await api.call("GET", "/api/v1/catalog/technicians?limit=200")
    assert status == 200
    [found] = [t["id"] for t in page["items"] if t["name"] == name]
    return int(found)


async def test_channels_are_replaced_in_order_and_the_notice_follows_them(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    ops = await api_for(client, make_token, "ops")
    tech = await technician_id(ops, "Técnico de guardia")
    path = f"/api/v1/catalog/technicians/{tech}/channels"
    status, before, _ = await ops.call("GET", path)
    assert (status, before) == (200, {"channels": []})
    wanted = [
        {"channel": "telegram", "address": "123456789"},
        {"channel": "sms", "address": "011 15-5555-0199"},  # local: read in [sms] default_region
        {"channel": "email", "address": "Guardia@Example.com"},
    ]
    status, stored, _ = await ops.call("PUT", path, {"channels": wanted})
    assert status == 200, stored
    assert stored["channels"] == [
        {"channel": "telegram", "address": "123456789", "provider": ""},
        {"channel": "sms", "address": "+5491155550199", "provider": ""},
        {"channel": "email", "address": "guardia@example.com", "provider": ""},
    ]
    status, again, _ = await ops.call("GET", path)
    assert again == stored
    # Assigning a case tells the technician on Telegram; SMS then email are the fallback.
    number = await new_case(services)
    status, _, _ = await ops.call(
        "PATCH", f"/api/v1/cases/{number}", {"assignee": "Técnico de guardia"}
    )
    assert status == 200
    async with services.db.session() as session:
        notice = await session.scalar(
            select(Notification)
            .where(Notification.audience == "technician")
            .order_by(Notification.id.desc())
            .limit(1)
        )
    assert notice is not None
    assert (notice.channel, notice.recipient) == ("telegram", "123456789")
    assert [(f["channel"], f["address"]) for f in notice.fallback] == [
        ("sms", "+5491155550199"),
        ("email", "guardia@example.com"),
    ]
    # An empty list goes back to the technician's catalog email.
    status, cleared, _ = await ops.call("PUT", path, {"channels": []})
    assert (status, cleared) == (200, {"channels": []})


@pytest.mark.parametrize(
    ("channels", "field"),
    [
        ([{"channel": "email", "address": "no-es-un-correo"}], "channels[0].address"),
        ([{"channel": "email", "address": "a@example.com"},
          {"channel": "sms", "address": "12"}], "channels[1].address"),
        ([{"channel": "telegram", "address": "@usuario"}], "channels[0].address"),
        ([{"channel": "push", "provider": "web", "address": "x"}], "channels[0].provider"),
        ([{"channel": "email", "provider": "web", "address": "a@example.com"}],
         "channels[0].provider"),
        ([{"channel": "email", "address": "a@example.com"},
          {"channel": "email", "address": "A@example.com"}], "channels[1]"),
    ],
)  # fmt: skip
async def test_a_bad_entry_is_refused_naming_it_and_nothing_changes(
    services: Services,
    client: Client,
    make_token: TokenFactory,
    channels: list[dict[str, str]],
    field: str,
) -> None:
    ops = await api_for(client, make_token, "ops")
    tech = await technician_id(ops, "Técnico de guardia")
    path = f"/api/v1/catalog/technicians/{tech}/channels"
    good = {"channels": [{"channel": "email", "address": "guardia@example.com"}]}
    assert (await ops.call("PUT", path, good))[0] == 200
    status, answer, _ = await ops.call("PUT", path, {"channels": channels})
    assert status == 422, answer
    assert field in json.dumps(answer["error"])
    assert (await ops.call("GET", path))[1]["channels"][0]["address"] == "guardia@example.com"


async def test_roles_and_unknown_technicians(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    agent = await api_for(client, make_token, "agent")
    ops = await api_for(client, make_token, "ops")
    tech = await technician_id(ops, "Técnico de guardia")
    path = f"/api/v1/catalog/technicians/{tech}/channels"
    assert (await agent.call("GET", path))[0] == 200
    body = {"channels": [{"channel": "email", "address": "a@example.com"}]}
    assert (await agent.call("PUT", path, body))[0] == 403
    missing = "/api/v1/catalog/technicians/999999/channels"
    assert (await ops.call("GET", missing))[0] == 404
    assert (await ops.call("PUT", missing, body))[0] == 404


def subscription() -> str:
    key = base64.urlsafe_b64encode(b"\x04" + os.urandom(64)).rstrip(b"=").decode()
    auth = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    return json.dumps(
        {"endpoint": "https://push.example.net/abc", "keys": {"p256dh": key, "auth": auth},
         "expirationTime": None}
    )  # fmt: skip


def test_push_addresses_are_checked_against_their_provider() -> None:
    kinds = {"navegador": "webpush", "movil": "fcm"}
    sub = subscription()
    found = checked_channels(
        [ChannelEntry("push", sub, "navegador"), ChannelEntry("push", "token-fcm", "movil")],
        "AR",
        kinds,
    )
    # The subscription is kept as the notifier needs it: endpoint and keys only.
    assert json.loads(found[0].address).keys() == {"endpoint", "keys"}
    assert found[1] == ChannelEntry("push", "token-fcm", "movil")
    with pytest.raises(OperationRefused) as refused:
        checked_channels([ChannelEntry("push", '{"endpoint": 1}', "navegador")], "AR", kinds)
    assert refused.value.field == "channels[0].address"
    with pytest.raises(OperationRefused) as refused:
        checked_channels([ChannelEntry("push", "t", "otro")], "AR", kinds)
    assert refused.value.field == "channels[0].provider" and "movil" in str(refused.value)
