"""The web form's refusals: a browser always gets its form back in HTML, with the customer's
input and the reason in their language; a JSON client gets the JSON error; a JSON post
with keys the form does not know is refused by name."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from config.app import Services, webform_config
from intake.form_body import Notice, human_size
from intake.webform import WebFormIntake
from storage.db import StorageUnavailable
from storage.models import Inbound
from tests.intake.test_webform import (
    JSON,
    Client,
    count,
    custom_app,
    fields,
    form_tokens,
    hidden,
    rejected,
)

# What a browser sends with a form post: HTML first, anything else after.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
LIMITS = {
    "VENTANILLA_INTAKE__MAX_ATTACHMENT_BYTES": "2048",
    "VENTANILLA_INTAKE__MAX_ATTACHMENTS": "2",
    "VENTANILLA_INTAKE__MAX_TOTAL_ATTACHMENT_BYTES": "3072",
}


async def browser_post(
    client: Client,
    *files: bytes,
    lang: str = "",
    headers: dict[str, str] | None = None,
    **overrides: str,
) -> aiohttp.ClientResponse:
    """Load the form and send it back as a browser does: multipart, every control in the
    page's order (files last), the hidden fields as the page set them."""
    page = await (await client.get("/form", params={"lang": lang} if lang else None)).text()
    names = re.findall(r'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"', page)
    assert names[-1] == "attachments" and names.index("csrf_token") < names.index("name")
    values = {**fields(), **overrides}
    form = aiohttp.FormData()
    for name in names:
        if name == "attachments":
            for i, data in enumerate(files or [b""]):
                form.add_field(name, data, filename=f"foto{i}.jpg" if files else "")
        elif name in ("csrf_token", "submission_id", "language") and name not in overrides:
            form.add_field(name, hidden(page, name))
        else:
            form.add_field(name, values.get(name, ""))
    headers = {**BROWSER, **(headers or {})}
    return await client.post("/form", data=form, headers=headers, allow_redirects=False)


async def form_again(resp: aiohttp.ClientResponse, status: int) -> str:
    """The answer is the form page, with the customer's input in it."""
    assert (resp.status, resp.content_type) == (status, "text/html")
    html = await resp.text()
    assert 'value="Ana.Perez@Example.COM"' in html and 'value="Ana Pérez"' in html
    assert "Desde anoche no tengo conexión." in html
    assert hidden(html, "csrf_token").count(".") == 2  # ready to be sent again
    return html


# --- unknown keys in JSON ----------------------------------------------------------------


async def test_json_unknown_fields_are_refused_by_name(client: Client, services: Services) -> None:
    body = {**fields(), "categroy": "Problema menor", "attachments": ["factura.pdf"]}
    resp = await client.post("/form", json=body, headers={"Accept-Language": "en"})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == {"categroy", "attachments"}
    known = (
        "category, csrf_token, description, email, language, name, phone, subject, "
        "submission_id, subreason, website"
    )
    assert error["fields"]["categroy"] == (
        f"Unknown field; did you mean category? Known fields: {known}."
    )
    assert "multipart/form-data" in error["fields"]["attachments"]
    assert await count(services, Inbound) == 0
    assert rejected(services, "validation") == 1


async def test_json_with_every_known_field_is_accepted(client: Client) -> None:
    tokens = await form_tokens(client)
    body = {**fields(), **tokens, "language": "en", "website": ""}
    resp = await client.post("/form", json=body)
    assert resp.status == 201, await resp.text()


async def test_browser_posts_may_carry_fields_the_form_does_not_know(client: Client) -> None:
    # Browser extensions and password managers add inputs of their own; they are harmless.
    tokens = await form_tokens(client)
    data = {**fields(), **tokens, "autofill_helper": "1"}
    resp = await client.post("/form", data=data, allow_redirects=False)
    assert resp.status == 303


# --- a browser gets its form back ----------------------------------------------------------


async def test_attachment_over_the_limit_gives_the_form_back(tmp_path: Path, db_url: str) -> None:
    async with custom_app(tmp_path, db_url, **LIMITS) as (client, services):
        resp = await browser_post(client, b"a" * 2049)
        html = await form_again(resp, 413)
        assert "Cada archivo puede tener como máximo 2 KB." in html
        assert "Por seguridad, vuelva a adjuntar los archivos." in html  # files never kept
        assert '<html lang="es">' in html

        resp = await browser_post(client, b"a", b"b", b"c", lang="en")
        html = await form_again(resp, 413)
        assert "You can attach at most 2 files." in html and '<html lang="en">' in html

        resp = await browser_post(client, b"a" * 2000, b"b" * 2000)
        assert "Los archivos adjuntos pueden sumar como máximo 3 KB." in await form_again(resp, 413)

        # A client that asks for JSON keeps getting the JSON error.
        resp = await browser_post(client, b"a" * 2049, headers=JSON)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "payload_too_large"

        assert await count(services, Inbound) == 0
        assert not any(services.settings.intake.attachments_dir.glob("*/*"))
        assert rejected(services, "too_large") == 4
        assert (await browser_post(client, b"a" * 2048)).status == 303


async def test_body_over_the_limit_gives_the_form_back(tmp_path: Path, db_url: str) -> None:
    async with custom_app(tmp_path, db_url, **LIMITS) as (client, services):
        # Refused on its Content-Length before any file is read; the fields ahead of the
        # files are still read (bounded) to give them back.
        resp = await browser_post(client, b"a" * 600_000, lang="en")
        html = await form_again(resp, 413)
        assert "The attached files may total at most 3 KB." in html
        assert "please attach your files again" in html
        assert await count(services, Inbound) == 0


async def test_text_over_the_limit_gives_back_what_fits(client: Client, services: Services) -> None:
    # A multipart post: the fields before the oversized one come back.
    resp = await browser_post(client, subject="s" * 600_000)
    assert (resp.status, resp.content_type) == (413, "text/html")
    html = await resp.text()
    assert "El texto es demasiado largo para enviarlo." in html
    assert 'value="Ana.Perez@Example.COM"' in html
    assert "Vuelva a adjuntar" not in html  # no files were sent
    # An urlencoded post refused on its Content-Length: the complete fields within the
    # limit come back, the one cut at the limit does not.
    tokens = await form_tokens(client)
    data = {**fields(description="d" * 600_000), **tokens}
    resp = await client.post("/form", data=data, headers=BROWSER)
    assert resp.status == 413
    html = await resp.text()
    assert 'value="Ana.Perez@Example.COM"' in html and 'value="Sin servicio"' in html
    assert "ddddd" not in html
    assert await count(services, Inbound) == 0


async def test_rate_limited_browser_gets_the_form_back(tmp_path: Path, db_url: str) -> None:
    env = {
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "1",
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_BURST": "1",
    }
    async with custom_app(tmp_path, db_url, **env) as (client, services):
        assert (await browser_post(client)).status == 303
        resp = await browser_post(client, b"photo", lang="en")
        html = await form_again(resp, 429)
        wait = int(resp.headers["Retry-After"])
        assert 1 <= wait <= 60
        assert f"Please wait {wait} seconds and send it again." in html
        assert "please attach your files again" in html
        resp = await browser_post(client, headers={"Accept-Language": "es"})
        assert "vuelva a enviarla" in await form_again(resp, 429)
        resp = await browser_post(client, headers=JSON)
        assert resp.status == 429
        assert (await resp.json())["error"]["code"] == "rate_limited"
        assert await count(services, Inbound) == 1
        assert rejected(services, "rate_limited") == 3


async def test_rate_limit_wins_over_a_part_that_cannot_be_read(tmp_path: Path, db_url: str) -> None:
    env = {
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_PER_MINUTE": "1",
        "VENTANILLA_HTTP__FORM_RATE_LIMIT_BURST": "1",
    }
    async with custom_app(tmp_path, db_url, **env) as (client, _services):
        assert (await browser_post(client)).status == 303
        parts = [("language", b"en"), ("email", b"ana@example.com"), ("name", b"\xff not UTF-8")]
        body = b"".join(
            b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (n.encode(), v)
            for n, v in parts
        )
        headers = {**BROWSER, "Content-Type": "multipart/form-data; boundary=XX"}
        resp = await client.post("/form", data=body + b"--XX--\r\n", headers=headers)
        assert (resp.status, resp.content_type) == (429, "text/html")
        html = await resp.text()
        assert 'value="ana@example.com"' in html  # what came before the bad part
        assert "Please wait" in html


async def test_expired_form_with_files_asks_for_them_again(
    client: Client, services: Services
) -> None:
    resp = await browser_post(client, b"photo", csrf_token="1.2.3")
    html = await form_again(resp, 403)
    assert "El formulario venció" in html
    assert "Por seguridad, vuelva a adjuntar los archivos." in html
    assert await count(services, Inbound) == 0


async def test_storage_down_gives_the_form_back_with_503(
    client: Client, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(_msg: object) -> None:
        raise StorageUnavailable("database is down")

    monkeypatch.setattr(services.writer, "accept", down)
    resp = await browser_post(client, b"photo")
    html = await form_again(resp, 503)
    assert resp.headers["Retry-After"] == "5"
    assert "En este momento no podemos recibir consultas." in html
    resp = await browser_post(client, headers=JSON)
    assert resp.status == 503
    assert "error" in await resp.json()


WITH_VALUE = ("rate_limited", "file_too_large", "too_many_files", "files_too_large")
WITHOUT_VALUE = ("expired", "fields_too_large", "unreadable", "unavailable")


@pytest.mark.parametrize("lang", ["es", "en"])
@pytest.mark.parametrize("key", WITH_VALUE + WITHOUT_VALUE)
async def test_every_notice_has_words_in_every_language(
    services: Services, key: str, lang: str
) -> None:
    form = form_intake(services)
    value = "7" if key in WITH_VALUE else ""
    resp = form._form_page(lang, {}, {}, "id", alert=Notice(key, value))
    assert isinstance(resp.text, str)
    notice = re.search(r'<div class="notice" role="alert"><p>([^<]+)</p>', resp.text)
    assert notice, resp.text
    assert "%s" not in notice.group(1)
    assert ("7" in notice.group(1)) == bool(value)


def form_intake(services: Services) -> WebFormIntake:
    """The form's handler object itself, for what a test client cannot reach."""
    return WebFormIntake(
        services.writer,
        services.catalog,
        services.attachments,
        services.intake_metrics,
        webform_config(services),
    )


def test_human_size_never_overstates_a_limit() -> None:
    assert [human_size(n) for n in (512, 2048, 3000, 26_214_400, 1_572_864)] == [
        "512 B",
        "2 KB",
        "2 KB",
        "25 MB",
        "1 MB",
    ]
