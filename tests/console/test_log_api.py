"""The outbound log through the API, on SQLite (writer process) and PostgreSQL: every
filter and combinations against a plain-Python oracle, keyset pages stable while rows
arrive, counts, full-text search, one message with its attempts, CSV export, and who may
see what."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import insert, update

from config.app import Services
from storage.models import Case, DeliveryAttempt, Notification, User
from tests.conftest import TokenFactory
from tests.console.log_support import row, seed_log
from tests.console.test_case_operations import Api, api_for

Client = TestClient[Any, Any]
LIST = "/api/v1/notifications"


async def all_ids(api: Api, query: str, limit: int = 50) -> list[int]:
    ids: list[int] = []
    cursor = ""
    while True:
        sep = "&" if query else ""
        path = f"{LIST}?{query}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await api.call("GET", path)
        assert status == 200, page
        ids += [i["id"] for i in page["items"]]
        if page["next_cursor"] is None:
            return ids
        cursor = page["next_cursor"]


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


CASES: list[tuple[str, Any]] = [
    ("", lambda r: True),
    ("channel=sms", lambda r: r["channel"] == "sms"),
    ("channel=email,push", lambda r: r["channel"] in ("email", "push")),
    ("status=failed", lambda r: r["status"] == "failed"),
    ("status=dead,suppressed", lambda r: r["status"] in ("dead", "suppressed")),
    ("sent=true", lambda r: r["status"] == "sent"),
    ("sent=false", lambda r: r["status"] != "sent"),
    ("trigger=manual", lambda r: r["trigger"] == "manual"),
    ("template=ack_sms", lambda r: r["template"] == "ack_sms"),
    ("provider=vonage", lambda r: r["provider"] == "vonage"),
    ("recipient=cliente3@example.com", lambda r: r["recipient"] == "cliente3@example.com"),
    ("since=2026-03-01", lambda r: r["created_at"] >= at("2026-03-01")),
    ("until=2026-03-01", lambda r: r["created_at"] < at("2026-03-02")),
    ("since=2026-02-01T00:00:00Z&until=2026-05-01",
     lambda r: at("2026-02-01") <= r["created_at"] < at("2026-05-02")),
    ("time=sent&since=2026-06-01",
     lambda r: r["sent_at"] is not None and r["sent_at"] >= at("2026-06-01")),
    ("channel=sms&status=failed&trigger=auto",
     lambda r: (r["channel"], r["status"], r["trigger"]) == ("sms", "failed", "auto")),
    ("sent=false&since=2026-04-01&channel=email",
     lambda r: r["status"] != "sent" and r["created_at"] >= at("2026-04-01")
     and r["channel"] == "email"),
]  # fmt: skip


async def test_every_filter_and_combinations_match_the_oracle(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services)
    api = await api_for(client, make_token, "ops")
    for query, keep in CASES:
        assert await all_ids(api, query, limit=13) == seeded.ids(keep), query
    number, case_id = next(iter(seeded.cases.items()))
    assert await all_ids(api, f"case={number}") == seeded.ids(lambda r: r["case_id"] == case_id)
    customer = seeded.customers[0]
    assert await all_ids(api, f"customer={customer}") == seeded.ids(
        lambda r: r["customer_id"] == customer
    )
    original = seeded.rows[5]["id"]
    async with services.db.session() as session, session.begin():
        resend = {**row(999, random.Random(1), None), "resend_of": original}
        resend_id = await session.scalar(
            insert(Notification).values(**resend).returning(Notification.id)
        )
    assert await all_ids(api, f"resend_of={original}") == [resend_id]
    seeded.rows.append({**resend, "id": resend_id})
    # Oldest first walks the same rows the other way.
    oldest = await all_ids(api, "channel=telegram&order=oldest", limit=9)
    assert oldest == seeded.ids(lambda r: r["channel"] == "telegram", oldest=True)


async def test_bad_filters_are_refused_naming_the_parameter(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    api = await api_for(client, make_token, "ops")
    for query, param in [
        ("channel=fax", "channel"), ("status=lost", "status"), ("sent=maybe", "sent"),
        ("since=ayer", "since"), ("customer=x", "customer"), ("case=CAS-999999", "case"),
        ("since=2026-05-01&until=2026-04-01", "until"), ("cursor=nope", "cursor"),
        ("order=random", "order"), ("stauts=sent", "stauts"), ("filter=nadie", "filter"),
    ]:  # fmt: skip
        status, body, _ = await api.call("GET", f"{LIST}?{query}")
        assert status == 400 and body["error"]["param"] == param, (query, body)


async def test_pages_stay_stable_while_rows_arrive(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=60)
    api = await api_for(client, make_token, "ops")
    before = seeded.ids(lambda r: True)
    seen: list[int] = []
    cursor = ""
    n = 0
    while True:
        path = f"{LIST}?limit=7" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await api.call("GET", path)
        assert status == 200
        seen += [i["id"] for i in page["items"]]
        # New rows (now, and one stamped inside the range already paged) between pages.
        async with services.db.session() as session, session.begin():
            fresh = row(500 + n, random.Random(n), None)
            fresh["created_at"] = datetime.now(UTC)
            await session.execute(insert(Notification).values(**fresh))
        n += 1
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)), "a row was repeated"
    assert seen == before, "a row was skipped or the order changed"


async def test_count_is_exact_up_to_ten_thousand(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=40)
    api = await api_for(client, make_token, "ops")
    status, page, _ = await api.call("GET", f"{LIST}?status=sent&count=true&limit=1")
    assert status == 200 and page["count"] == len(seeded.ids(lambda r: r["status"] == "sent"))
    base = row(1, random.Random(2), None)
    async with services.db.session() as session, session.begin():
        await session.execute(
            insert(Notification),
            [{**base, "template": "bulk_test", "created_at": base["created_at"]}] * 10_001,
        )
    status, page, _ = await api.call("GET", f"{LIST}?template=bulk_test&count=true&limit=2")
    assert status == 200 and page["count"] == "10,000+" and len(page["items"]) == 2


async def test_free_text_search(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=48)
    api = await api_for(client, make_token, "ops")

    def has(*words: str) -> Any:
        return lambda r: all(
            w.lower() in f"{r['recipient']} {r['subject']} {r['body']}".lower() for w in words
        )

    assert await all_ids(api, "q=factura") == seeded.ids(has("factura"))
    assert await all_ids(api, "q=revisado%20antena") == seeded.ids(has("revisado", "antena"))
    assert await all_ids(api, "q=fact") == seeded.ids(has("factura"))  # the last word: a prefix
    assert await all_ids(api, "q=factura&channel=sms") == seeded.ids(
        lambda r: has("factura")(r) and r["channel"] == "sms"
    )
    assert await all_ids(api, 'q="OR" NOT (') == []  # operators are words, not syntax
    # A row changed later is found by its new text (the index follows updates).
    target = seeded.rows[0]["id"]
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Notification).where(Notification.id == target).values(body="palabrarara")
        )
    assert await all_ids(api, "q=palabrarara") == [target]


async def test_one_message_as_sent_with_attempts(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=8)
    email = next(r for r in seeded.rows if r["channel"] == "email" and r.get("case_id"))
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Notification).where(Notification.id == email["id"]).values(
                message_id="abc@ventanilla.example", headers={"Auto-Submitted": "auto-replied"}
            )
        )  # fmt: skip
        await session.execute(
            insert(DeliveryAttempt),
            [
                {"notification_id": email["id"], "outcome": "transient", "provider": "email",
                 "provider_code": "451", "provider_response": "4.3.0 try later",
                 "started_at": email["created_at"], "duration_ms": 12},
                {"notification_id": email["id"], "outcome": "sent", "provider": "email",
                 "provider_code": "250", "provider_response": "2.0.0 queued",
                 "started_at": email["created_at"] + timedelta(minutes=1), "duration_ms": 9},
            ],
        )  # fmt: skip
    api = await api_for(client, make_token, "ops")
    status, body, _ = await api.call("GET", f"{LIST}/{email['id']}")
    assert status == 200, body
    headers = body["message"]["headers"]
    assert headers["Message-ID"] == "<abc@ventanilla.example>"
    assert headers["To"] == email["recipient"] and headers["Auto-Submitted"] == "auto-replied"
    assert body["message"]["text"] == email["body"]
    assert [a["provider_code"] for a in body["delivery_attempts"]] == ["451", "250"]
    assert body["case_ref"]["number"] in seeded.cases
    assert [c["id"] for c in body["chain"]] == [email["id"]]
    assert (await api.call("GET", f"{LIST}/999999999"))[0] == 404


async def test_csv_export_streams_the_filtered_log(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=30)
    api = await api_for(client, make_token, "ops")
    response = await client.get(f"{LIST}/export?format=csv&channel=sms", headers=api.headers)
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [int(r["id"]) for r in rows] == seeded.ids(lambda r: r["channel"] == "sms")
    assert rows[0]["recipient"].startswith("+54911555")  # a phone number is not quoted


async def test_roles_intake_sees_nothing_and_agents_their_own_cases(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=24)
    intake = await api_for(client, make_token, "intake")
    assert (await intake.call("GET", LIST))[0] == 403
    agent = await api_for(client, make_token, "agent")
    assert await all_ids(agent, "") == []  # an agent without a technician sees nothing
    case_id = next(iter(seeded.cases.values()))
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(User).where(User.name.like("test-agent-%")).values(technician_id=1)
        )
        await session.execute(update(Case).where(Case.id == case_id).values(assignee_id=1))
    mine = seeded.ids(lambda r: r["case_id"] == case_id)
    assert mine and await all_ids(agent, "") == mine
    other = next(r["id"] for r in seeded.rows if r["case_id"] != case_id)
    assert (await agent.call("GET", f"{LIST}/{other}"))[0] == 404
    assert (await agent.call("GET", f"{LIST}/{mine[0]}"))[0] == 200
    assert (await agent.call("POST", f"{LIST}/{mine[0]}/resend", {}))[0] == 403
    assert (await agent.call("POST", f"{LIST}/resend", {"ids": mine}))[0] == 403
