"""The public web form: pages, the three body formats, CSRF, honeypot, dedup, limits."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from config.app import Services, build_http_app, open_services
from intake.csrf import CsrfTokens
from intake.forms import negotiate_language, prefers_json
from intake.ratelimit import RateLimiter
from storage import migrate
from storage.db import StorageUnavailable
from storage.models import (
    Area,
    Attachment,
    Case,
    Category,
    CustomerIdentity,
    Inbound,
    Notification,
    Technician,
)
from tests.conftest import intake_batch, make_settings

Client = TestClient[Any, Any]
JSON = {"Accept": "application/json"}
CASE = re.compile(r"CAS-\d{6}")


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


async def form_tokens(client: Client) -> dict[str, str]:
    resp = await client.get("/form")
    html = await resp.text()
    return {name: hidden(html, name) for name in ("csrf_token", "submission_id")}


def fields(**overrides: str) -> dict[str, str]:
    base = {
        "name": "Ana Pérez",
        "email": "Ana.Perez@Example.COM",
        "phone": "",
        "category": "Problema Grave",
        "subreason": "No tengo Internet",
        "subject": "Sin servicio",
        "description": "Desde anoche no tengo conexión.\nYa reinicié el módem.",
    }
    base.update(overrides)
    return base


async def count(services: Services, model: Any) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def rejected(services: Services, reason: str) -> float:
    labels = {"channel": "web", "reason": reason}
    return services.registry.get_sample_value("ventanilla_inbound_rejected_total", labels) or 0.0


@asynccontextmanager
async def custom_app(
    tmp_path: Path, db_url: str, **env: str
) -> AsyncIterator[tuple[Client, Services]]:
    """A whole app with its own settings (limits, rate limits)."""
    settings = make_settings(tmp_path, db_url, **env)
    if not settings.database.is_sqlite:
        await migrate.upgrade(settings.database.url)
    services = await open_services(settings)
    task = asyncio.create_task(services.writes.run())
    try:
        async with TestClient(TestServer(build_http_app(services))) as client:
            yield client, services
    finally:
        await services.writes.close()
        await task
        await services.close()


# --- pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "es"),
        ("en", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("es;q=0.5, en;q=0.9", "en"),
        ("en;q=0.4, es-AR;q=0.8", "es"),
        ("en;q=0, fr", "es"),
        ("fr, en;q=0.1", "en"),
        ("en;q=abc, es;q=0.3", "es"),
        ("*", "es"),
    ],
)
def test_accept_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate_language(header, "es") == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", True),
        ("application/json, text/html;q=0.5", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        (None, False),
        ("text/html;q=0.1, application/*", True),
    ],
)
def test_prefers_json(header: str | None, expected: bool) -> None:
    assert prefers_json(header) is expected


def test_csrf_tokens_expire_and_resist_tampering() -> None:
    now = [1_000_000.0]
    tokens = CsrfTokens(b"k" * 32, clock=lambda: now[0])
    token = tokens.issue()
    assert tokens.verify(token)
    assert not tokens.verify(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert not CsrfTokens(b"other", clock=lambda: now[0]).verify(token)
    assert not tokens.verify("1.2") and not tokens.verify(None) and not tokens.verify("x" * 500)
    now[0] += 2 * 60 * 60 + 1
    assert not tokens.verify(token)


def test_rate_limiter_refills_and_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(60, 2, max_clients=3, clock=lambda: now[0])
    assert limiter.take("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == 1  # one token a second
    now[0] += 1.0
    assert limiter.take("a") == 0
    for key in "bcdef":
        limiter.take(key)
    assert len(limiter) == 3
    assert RateLimiter(0, 1).take("a") == 0  # 0 = off


# --- GET /form ---------------------------------------------------------------------------


async def test_form_in_spanish_with_catalog_and_hidden_fields(client: Client) -> None:
    resp = await client.get("/form")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    assert '<html lang="es">' in html
    assert 'name="viewport"' in html
    assert "Contactar a soporte" in html
    # Portal categories: value is the name, label the customer-facing description.
    assert '<option value="Problema Grave">Tengo un problema grave con el servicio</option>' in html
    assert '<optgroup label="Tengo un problema menor o una molestia">' in html
    assert '<option value="Se quemó el módem">' in html
    for name in ("name", "email", "phone", "subject", "description", "attachments", "website"):
        assert f'name="{name}"' in html
    assert 'type="email"' in html and 'type="tel"' in html and "multiple" in html
    assert 'enctype="multipart/form-data"' in html
    assert re.search(r'<label for="email">', html)
    assert 'aria-describedby="phone-hint"' in html
    uuid.UUID(hidden(html, "submission_id"))
    assert hidden(html, "csrf_token").count(".") == 2
    assert 'tabindex="-1"' in html  # the honeypot is out of the tab order


async def test_form_in_english_when_preferred(client: Client) -> None:
    resp = await client.get("/form", headers={"Accept-Language": "es;q=0.5, en-US;q=0.9"})
    html = await resp.text()
    assert '<html lang="en">' in html
    assert "Contact support" in html
    assert "Tengo un problema grave con el servicio" in html  # catalog text as configured
    resp = await client.get("/form?lang=es", headers={"Accept-Language": "en"})
    assert '<html lang="es">' in await resp.text()


async def test_form_lists_only_portal_categories(client: Client, services: Services) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Category)
            .where(Category.name == "Otro tipo de Problema")
            .values(available_web_portal=False)
        )
    await services.catalog.refresh()
    html = await (await client.get("/form")).text()
    assert 'value="Otro tipo de Problema"' not in html
    assert 'value="Problema Grave"' in html


# --- successful posts --------------------------------------------------------------------


async def test_urlencoded_post_routes_and_redirects_to_thanks(
    client: Client, services: Services
) -> None:
    tokens = await form_tokens(client)
    resp = await client.post("/form", data={**fields(), **tokens}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    location = resp.headers["Location"]
    match = re.fullmatch(r"/form/thanks\?case=(CAS-\d{6})", location)
    assert match, location
    number = match.group(1)
    page = await client.get(location)
    assert page.status == 200
    assert number in await page.text()

    async with services.db.session() as session:
        row = (
            await session.execute(
                select(Case, Area.name, Technician.name)
                .join(Area, Area.id == Case.area_id)
                .join(Technician, Technician.id == Case.assignee_id)
                .where(Case.number == number)
            )
        ).one()
        case, area, technician = row
        assert (area, technician) == ("Técnica", "Técnico de guardia")
        assert case.subreason == "No tengo Internet"
        assert case.origin_channel == "web"
        assert case.title == "Sin servicio"
        ack = (
            await session.scalars(
                select(Notification).where(
                    Notification.case_id == case.id, Notification.audience == "customer"
                )
            )
        ).one()
        assert (ack.channel, ack.status, ack.recipient) == (
            "email",
            "pending",
            "ana.perez@example.com",
        )
        assert number in ack.subject
        inbound = (await session.scalars(select(Inbound).where(Inbound.case_id == case.id))).one()
        assert inbound.channel == "web"
        assert inbound.external_id == f"web:{tokens['submission_id']}"
        assert b"description=Desde+anoche" in inbound.raw  # the body as received


async def test_json_post_answers_201_with_case_number(client: Client, services: Services) -> None:
    body = fields(email="", phone="011 4321-5678", subject="")
    resp = await client.post("/form", json=body)
    assert resp.status == 201
    data = await resp.json()
    assert data["status"] == "created"
    assert CASE.fullmatch(data["case"]["number"])
    async with services.db.session() as session:
        case = (await session.scalars(select(Case))).one()
        assert case.number == data["case"]["number"]
        assert case.title == "Desde anoche no tengo conexión."  # derived from the description
        idents = (await session.scalars(select(CustomerIdentity.value))).all()
        assert idents == ["+541143215678"]  # E.164
        ack = (
            await session.scalars(select(Notification).where(Notification.audience == "customer"))
        ).one()
        assert ack.channel == "sms"


async def test_browser_post_accepting_json_gets_json(client: Client) -> None:
    tokens = await form_tokens(client)
    resp = await client.post("/form", data={**fields(), **tokens}, headers=JSON)
    assert resp.status == 201
    assert (await resp.json())["status"] == "created"


async def test_multipart_with_attachments_stores_files_first(
    client: Client, services: Services
) -> None:
    tokens = await form_tokens(client)
    form = aiohttp.FormData(quote_fields=False)  # send the path as a hostile client would
    for key, value in {**fields(), **tokens}.items():
        form.add_field(key, value)
    form.add_field(
        "attachments", b"%PDF-1.4 invoice", filename="factura.pdf", content_type="application/pdf"
    )
    form.add_field(
        "attachments", b"\x89PNG photo", filename="../../etc/foto.png", content_type="image/png"
    )
    form.add_field("attachments", b"", filename="", content_type="application/octet-stream")
    resp = await client.post("/form", data=form, headers=JSON)
    assert resp.status == 201, await resp.text()

    async with services.db.session() as session:
        rows = (await session.scalars(select(Attachment).order_by(Attachment.id))).all()
        inbound = (await session.scalars(select(Inbound))).one()
    assert [(r.filename, r.content_type, r.size) for r in rows] == [
        ("factura.pdf", "application/pdf", 16),
        ("foto.png", "image/png", 10),
    ]
    root = services.settings.intake.attachments_dir
    for row in rows:
        path = root / row.sha256[:2] / row.sha256
        assert path.is_file()
        assert len(path.read_bytes()) == row.size
    raw = json.loads(inbound.raw)
    assert raw["fields"]["description"].startswith("Desde anoche")
    assert "csrf_token" not in raw["fields"]
    assert [a["sha256"] for a in raw["attachments"]] == [r.sha256 for r in rows]


async def test_double_submit_creates_one_case(client: Client, services: Services) -> None:
    tokens = await form_tokens(client)
    first = await client.post("/form", data={**fields(), **tokens}, allow_redirects=False)
    second = await client.post("/form", data={**fields(), **tokens}, allow_redirects=False)
    assert first.status == second.status == 303
    assert first.headers["Location"] == second.headers["Location"]
    sid = str(uuid.uuid4())
    one = await client.post("/form", json={**fields(), "submission_id": sid})
    two = await client.post("/form", json={**fields(), "submission_id": sid})
    assert (one.status, two.status) == (201, 200)
    assert (await two.json()) == {"case": (await one.json())["case"], "status": "duplicate"}
    assert await count(services, Case) == 2


async def test_english_submission_thanks_page_and_case_language(
    client: Client, services: Services
) -> None:
    resp = await client.get("/form?lang=en")
    html = await resp.text()
    tokens = {n: hidden(html, n) for n in ("csrf_token", "submission_id", "language")}
    assert tokens["language"] == "en"
    resp = await client.post("/form", data={**fields(), **tokens}, allow_redirects=False)
    location = resp.headers["Location"]
    assert location.endswith("&lang=en")
    page = await (await client.get(location)).text()
    assert "Your case number is" in page
    async with services.db.session() as session:
        assert (await session.scalars(select(Case.language))).one() == "en"


async def test_thanks_page_never_shows_text_from_the_link(client: Client) -> None:
    for case in ("<b>x</b>", "CAS-000001"):  # see test_webform_receipts for the rest
        page = await (await client.get("/form/thanks", params={"case": case})).text()
        assert case not in page and "&lt;b&gt;" not in page
        assert "Recibimos su mensaje" in page


async def test_failed_routing_still_answers_received(
    client: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("rule engine bug")

    monkeypatch.setattr(intake_batch(services).engine, "decide", broken)
    resp = await client.post("/form", json=fields())
    assert resp.status == 202
    assert (await resp.json())["status"] == "failed"
    tokens = await form_tokens(client)
    resp = await client.post("/form", data={**fields(), **tokens}, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/form/thanks")
    async with services.db.session() as session:
        statuses = (await session.scalars(select(Inbound.status))).all()
    assert statuses == ["failed", "failed"]  # nothing lost


async def test_storage_unavailable_is_503_with_retry_after(
    client: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(_msg: object) -> None:
        raise StorageUnavailable("database is down")

    monkeypatch.setattr(services.writer, "accept", down)
    resp = await client.post("/form", json=fields())
    assert resp.status == 503
    assert "Retry-After" in resp.headers


# --- refusals ----------------------------------------------------------------------------


async def test_browser_post_without_valid_csrf_is_403(client: Client, services: Services) -> None:
    tokens = await form_tokens(client)
    for token in (None, tokens["csrf_token"] + "x", "1.2.3"):
        data = {**fields(), "submission_id": tokens["submission_id"]}
        if token is not None:
            data["csrf_token"] = token
        resp = await client.post("/form", data=data)
        assert resp.status == 403
        html = await resp.text()
        assert "El formulario venció" in html
        assert 'value="Ana.Perez@Example.COM"' in html  # values kept for the retry
    resp = await client.post("/form", data=fields(), headers=JSON)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    assert await count(services, Inbound) == 0
    assert rejected(services, "csrf") == 4


async def test_honeypot_pretends_success_and_keeps_nothing(
    client: Client, services: Services
) -> None:
    tokens = await form_tokens(client)
    data = {**fields(), **tokens, "website": "http://spam.example"}
    resp = await client.post("/form", data=data, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/form/thanks")
    resp = await client.post("/form", json={**fields(), "website": "x"})
    assert resp.status == 202
    assert await count(services, Inbound) == 0
    assert await count(services, Case) == 0
    assert rejected(services, "honeypot") == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "", "phone": ""}, "email"),
        ({"email": "", "phone": ""}, "phone"),
        ({"email": "ana@"}, "email"),
        ({"email": "", "phone": "12"}, "phone"),
        ({"category": "Inventada"}, "category"),
        ({"subreason": "Servicio lento"}, "subreason"),
        ({"category": "", "subreason": "Otros"}, "subreason"),
        ({"description": "  "}, "description"),
        ({"subject": "x" * 201}, "subject"),
        ({"name": "x" * 201}, "name"),
        ({"description": "x" * 20_001}, "description"),
        ({"submission_id": "1"}, "submission_id"),
    ],
)
async def test_json_validation_errors_name_the_field(
    client: Client, services: Services, overrides: dict[str, str], field: str
) -> None:
    resp = await client.post("/form", json=fields(**overrides))
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    assert field in error["fields"]
    assert await count(services, Inbound) == 0
    assert rejected(services, "validation") == 1


async def test_json_values_must_be_text(client: Client) -> None:
    resp = await client.post("/form", json={**fields(), "name": ["Ana"], "phone": 5})
    assert resp.status == 422
    assert set((await resp.json())["error"]["fields"]) == {"name", "phone"}


async def test_category_not_on_the_portal_is_refused(client: Client, services: Services) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Category)
            .where(Category.name == "Problema Grave")
            .values(available_web_portal=False)
        )
    await services.catalog.refresh()
    resp = await client.post("/form", json=fields())
    assert resp.status == 422
    assert "category" in (await resp.json())["error"]["fields"]


async def test_browser_validation_rerenders_the_form(client: Client, services: Services) -> None:
    tokens = await form_tokens(client)
    data = {**fields(email="ana@", subject="<script>x</script>"), **tokens}
    resp = await client.post("/form", data=data, headers={"Accept-Language": "en"})
    assert resp.status == 422
    html = await resp.text()
    assert "Please check the marked fields" in html
    assert 'id="email-error"' in html and 'aria-invalid="true"' in html
    assert 'aria-describedby="email-error"' in html
    assert 'value="ana@"' in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert hidden(html, "submission_id") == tokens["submission_id"]
    assert await count(services, Inbound) == 0


async def test_wrong_content_type_is_415(client: Client, services: Services) -> None:
    plain = {"Content-Type": "text/plain"}
    resp = await client.post("/form", data=b"hola", headers={**plain, **JSON})
    assert resp.status == 415
    assert (await resp.json())["error"]["code"] == "unsupported_media_type"
    # A browser (a form with enctype="text/plain") gets the form, not a JSON document.
    resp = await client.post("/form", data=b"hola", headers=plain)
    assert (resp.status, resp.content_type) == (415, "text/html")
    assert "No pudimos leer el formulario" in await resp.text()
    assert rejected(services, "unsupported_media") == 2


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe\x00"])
async def test_malformed_json_is_400(client: Client, body: bytes) -> None:
    resp = await client.post("/form", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "malformed_json"


async def test_oversized_body_is_413_json(client: Client) -> None:
    big = fields(description="x" * 600_000)
    resp = await client.post("/form", json=big)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for _ in range(20):
            yield b"x" * 65_536

    resp = await client.post("/form", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_attachment_limits_are_413(tmp_path: Path, db_url: str) -> None:
    limits = {
        "VENTANILLA_INTAKE__MAX_ATTACHMENT_BYTES": "1000",
        "VENTANILLA_INTAKE__MAX_ATTACHMENTS": "2",
        "VENTANILLA_INTAKE__MAX_TOTAL_ATTACHMENT_BYTES": "1500",
    }
    async with custom_app(tmp_path, db_url, **limits) as (client, services):

        async def post(*sizes: int) -> aiohttp.ClientResponse:
            tokens = await form_tokens(client)
            form = aiohttp.FormData()
            for key, value in {**fields(), **tokens}.items():
                form.add_field(key, value)
            for i, size in enumerate(sizes):
                form.add_field("attachments", b"a" * size, filename=f"f{i}.bin")
            return await client.post("/form", data=form, headers=JSON)

        for sizes, words in [
            ((1001,), "each attachment"),
            ((10, 10, 10), "at most 2"),
            ((900, 900), "total"),
        ]:
            resp = await post(*sizes)
            assert resp.status == 413, sizes
            assert words in (await resp.json())["error"]["message"]
        assert await count(services, Inbound) == 0
        assert not any(services.settings.intake.attachments_dir.glob("*/*"))
        assert (await post(1000, 500)).status == 201


async def test_rate_limit_per_client_ip(tmp_path: Path, db_url: str) -> None:
    env = {
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "1",
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_BURST": "2",
        "VENTANILLA_HTTP__TRUST_FORWARDED_FOR": "true",
    }
    async with custom_app(tmp_path, db_url, **env) as (client, services):
        first = {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"}
        statuses = [
            (await client.post("/form", json=fields(), headers=first)).status for _ in range(3)
        ]
        assert statuses == [201, 201, 429]
        resp = await client.post("/form", json=fields(), headers=first)
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert (await resp.json())["error"]["code"] == "rate_limited"
        # The right-most hop is the one our proxy added: another client there has its own.
        other = {"X-Forwarded-For": "198.51.100.7, 203.0.113.2"}
        assert (await client.post("/form", json=fields(), headers=other)).status == 201
        assert rejected(services, "rate_limited") == 2
        assert await count(services, Inbound) == 3


async def test_forwarded_for_ignored_unless_trusted(tmp_path: Path, db_url: str) -> None:
    env = {
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "1",
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_BURST": "1",
    }
    async with custom_app(tmp_path, db_url, **env) as (client, _services):
        assert (await client.post("/form", json=fields())).status == 201
        spoofed = {"X-Forwarded-For": "192.0.2.99"}
        assert (await client.post("/form", json=fields(), headers=spoofed)).status == 429
