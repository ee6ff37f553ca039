"""Signing in to the web console: passwords set with the CLI, the session cookie, CSRF,
expiry, signing out, who may sign in, and where the form sends people afterwards."""

from __future__ import annotations

import argparse
import io
import sys
from datetime import timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from config.app import Services, build_http_app
from config.cli_users import add_users_parsers
from storage.auth import create_token
from storage.console_sessions import SetPassword
from storage.models import ConsoleSession, User, utcnow
from storage.operations import OperationRefused
from tests.conftest import make_settings
from tests.console.console_support import (
    PASSWORD,
    Client,
    add_user,
    csrf_in,
    post_login,
    sign_in,
)

LOG = "/console/log"


async def users_cli(services: Services, *argv: str, stdin: str = "") -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="ventanilla")
    add_users_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code: int = await args.handler(services, args, out)
    finally:
        sys.stdin = saved
    return code, out.getvalue()


async def signed_in(client: Client) -> bool:
    """Whether the client's cookie opens a console page (no redirect to the form)."""
    response = await client.get(LOG, allow_redirects=False)
    return response.status == 200


def set_cookie(response: Any, name: str) -> Any:
    for header in response.headers.getall("Set-Cookie", []):
        cookie = SimpleCookie()
        cookie.load(header)
        if name in cookie:
            return cookie[name]
    raise AssertionError(f"no Set-Cookie for {name}")


# --- the CLI --------------------------------------------------------------------------------


async def test_cli_sets_a_password_that_signs_in(services: Services, client: Client) -> None:
    code, out = await users_cli(
        services, "users", "create", "marta", "--role", "ops", "--password-stdin",
        stdin="una clave larga\n",
    )  # fmt: skip
    assert code == 0, out
    assert "marta" in out and "created" in out
    stored = await services.db.read(
        lambda conn: conn.scalar(select(User.password_hash).where(User.name == "marta"))
    )
    assert stored.startswith("$argon2id$") and "una clave larga" not in stored
    await sign_in(client, "marta", "una clave larga")
    assert await signed_in(client)

    code, out = await users_cli(
        services, "users", "passwd", "marta", "--password-stdin", stdin="otra clave larga\n"
    )
    assert code == 0, out
    # A new password closes every session the user had.
    assert not await signed_in(client)
    assert (await post_login(client, "marta", "una clave larga")).status == 401
    await sign_in(client, "marta", "otra clave larga")


@pytest.mark.parametrize("password", ["", "corta", "1234567"])
async def test_cli_refuses_empty_and_short_passwords(services: Services, password: str) -> None:
    code, out = await users_cli(
        services, "users", "create", "beto", "--role", "agent", "--password-stdin",
        stdin=password + "\n",
    )  # fmt: skip
    assert code == 1
    assert "refused" in out and ("8 characters" in out or "empty" in out)
    exists = await services.db.read(
        lambda conn: conn.scalar(select(User.id).where(User.name == "beto"))
    )
    assert exists is None


async def test_cli_asks_twice_on_a_terminal(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["primera clave", "segunda clave"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    parser = argparse.ArgumentParser(prog="ventanilla")
    add_users_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["users", "create", "carla", "--role", "admin"])
    out = io.StringIO()
    assert await args.handler(services, args, out) == 1
    assert "differ" in out.getvalue()

    answers = iter(["misma clave 1", "misma clave 1"])
    out = io.StringIO()
    assert await args.handler(services, args, out) == 0, out.getvalue()


async def test_cli_passwd_of_an_unknown_user_and_agent_technician(services: Services) -> None:
    code, out = await users_cli(
        services, "users", "passwd", "nadie", "--password-stdin", stdin="una clave larga\n"
    )
    assert code == 1 and "no user" in out
    code, out = await users_cli(
        services, "users", "create", "tec", "--role", "agent", "--technician", "99999",
        "--password-stdin", stdin="una clave larga\n",
    )  # fmt: skip
    assert code == 1 and "no technician" in out


# --- signing in -----------------------------------------------------------------------------


async def test_sign_in_sets_a_strict_http_only_cookie(services: Services, client: Client) -> None:
    await add_user(services, "ana", "ops")
    assert not await signed_in(client)
    response = await post_login(client, "ana")
    assert response.status == 303
    assert response.headers["Location"] == LOG
    cookie = set_cookie(response, "ventanilla_session")
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert cookie["max-age"] == str(12 * 3600)
    assert not cookie["secure"]  # the public URL is http here
    assert len(cookie.value) >= 43  # 32 random bytes
    # Only its hash is stored.
    hashes = await services.db.read(
        lambda conn: list(conn.scalars(select(ConsoleSession.token_hash)))
    )
    assert len(hashes) == 1 and cookie.value not in hashes[0]
    assert await signed_in(client)


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    services: Services, client: Client
) -> None:
    await add_user(services, "ana", "ops")
    wrong = await post_login(client, "ana", "no es esta clave")
    unknown = await post_login(client, "zzz", "no es esta clave")
    assert wrong.status == unknown.status == 401
    assert wrong.content_type == "text/html"
    wrong_page = (await wrong.text()).replace('value="ana"', 'value="X"')
    unknown_page = (await unknown.text()).replace('value="zzz"', 'value="X"')
    assert wrong_page == unknown_page
    assert "Usuario o contraseña incorrectos" in wrong_page
    assert "ventanilla_session" not in wrong.headers.get("Set-Cookie", "")
    assert not await signed_in(client)


async def test_every_console_role_signs_in_and_intake_does_not(
    services: Services, client: Client
) -> None:
    for role in ("agent", "ops", "admin"):
        await add_user(services, f"u-{role}", role)
        await sign_in(client, f"u-{role}")
        assert await signed_in(client)
        client.session.cookie_jar.clear()
    # An integration's user given a password by hand still may not use the console.
    async with services.db.session() as session, session.begin():
        await create_token(session, "crm", "intake")
    with_hash = (await add_user(services, "tmp", "ops")).id
    async with services.db.session() as session, session.begin():
        stored = await session.scalar(select(User.password_hash).where(User.id == with_hash))
        await session.execute(update(User).where(User.name == "crm").values(password_hash=stored))
    assert (await post_login(client, "crm")).status == 401
    with pytest.raises(OperationRefused, match="cannot sign in"):
        await services.writes.submit(SetPassword("crm", stored or "", role=None))


async def test_sign_in_attempts_are_limited_per_address(services: Services, client: Client) -> None:
    await add_user(services, "ana", "ops")
    for _ in range(10):
        assert (await post_login(client, "ana", "no es esta")).status == 401
    slowed = await post_login(client, "ana")  # even the right password, for a while
    assert slowed.status == 429
    assert int(slowed.headers["Retry-After"]) >= 1
    assert "Demasiados intentos" in await slowed.text()


async def test_csrf_is_required_on_every_post(services: Services, client: Client) -> None:
    await add_user(services, "ana", "ops")
    # The sign-in form's own token (double submit: field and cookie).
    form = await client.get("/console/login")
    data = {"name": "ana", "password": PASSWORD, "csrf_token": "forged"}
    refused = await client.post("/console/login", data=data, allow_redirects=False)
    assert refused.status == 403 and refused.content_type == "text/html"
    data["csrf_token"] = csrf_in(await form.text())
    assert (await client.post("/console/login", data=data, allow_redirects=False)).status == 303

    page = await client.get("/console/login?next=/console/log", allow_redirects=False)
    assert page.status == 303  # already signed in
    for attempt in ({}, {"csrf_token": "wrong"}):
        response = await client.post("/console/logout", data=attempt, allow_redirects=False)
        assert response.status == 403
        assert response.content_type == "text/html"
        assert "venció" in await response.text()
    wrong_header = await client.post(
        "/console/logout", headers={"X-CSRF-Token": "nope"}, allow_redirects=False
    )
    assert wrong_header.status == 403
    assert await signed_in(client)


async def test_logout_ends_the_session(services: Services, client: Client) -> None:
    await add_user(services, "ana", "ops")
    await sign_in(client, "ana")
    token = await services.db.read(lambda conn: conn.scalar(select(ConsoleSession.csrf_token)))
    response = await client.post(
        "/console/logout", headers={"X-CSRF-Token": token}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/console/login"
    assert set_cookie(response, "ventanilla_session").value == ""
    count = await services.db.read(lambda conn: len(list(conn.scalars(select(ConsoleSession.id)))))
    assert count == 0
    assert not await signed_in(client)


async def test_an_expired_session_sends_back_to_the_form(
    services: Services, client: Client
) -> None:
    await add_user(services, "ana", "ops")
    await sign_in(client, "ana")
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await client.get(f"{LOG}?channel=email", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/console/login?next=/console/log?channel%3Demail"
    # A script's call hears 401 in JSON instead of a page.
    call = await client.get(LOG, headers={"Accept": "application/json"}, allow_redirects=False)
    assert call.status == 401 and (await call.json())["error"]["code"] == "unauthorized"
    # The next sign-in sweeps the expired row away.
    await sign_in(client, "ana")
    count = await services.db.read(lambda conn: len(list(conn.scalars(select(ConsoleSession.id)))))
    assert count == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/console/log?channel=sms", "/console/log?channel=sms"),
        ("https://evil.example/", "/console/log"),
        ("//evil.example/console/", "/console/log"),
        ("/console/login", "/console/log"),
        ("/\\evil.example", "/console/log"),
        ("/form", "/console/log"),
    ],
)
async def test_only_local_console_paths_are_followed_after_sign_in(
    services: Services, client: Client, given: str, expected: str
) -> None:
    await add_user(services, "ana", "ops")
    response = await post_login(client, "ana", next_path=given)
    assert response.status == 303 and response.headers["Location"] == expected


async def test_pages_speak_the_browsers_language(services: Services, client: Client) -> None:
    spanish = await (await client.get("/console/login")).text()
    assert 'lang="es"' in spanish and "Ingresar" in spanish
    english = await client.get("/console/login", headers={"Accept-Language": "en-GB,es;q=0.5"})
    assert "Sign in" in await english.text()
    await add_user(services, "ana", "ops")
    wrong = await post_login(client, "ana", "mal", **{"Accept-Language": "en"})
    assert "Wrong user name or password" in await wrong.text()
    headers = english.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"


async def test_console_errors_are_pages_not_json(services: Services, client: Client) -> None:
    await add_user(services, "ana", "ops")
    await sign_in(client, "ana")
    missing = await client.get("/console/no-such-page")
    assert missing.status == 404 and missing.content_type == "text/html"
    assert "No encontrado" in await missing.text()
    css = await client.get("/console/static/console.css")
    assert css.status == 200 and "text/css" in css.content_type


async def test_secure_cookie_when_the_public_url_is_https(
    tmp_path: Path, db_url: str, services: Services
) -> None:
    settings = make_settings(tmp_path, db_url, VENTANILLA_HTTP__PUBLIC_URL="https://sop.example")
    services.settings = settings
    await add_user(services, "ana", "ops")
    async with TestClient(TestServer(build_http_app(services))) as https_client:
        form = await https_client.get("/console/login")
        token = csrf_in(await form.text())
        assert set_cookie(form, "ventanilla_login_csrf")["secure"] is True
        # The jar keeps Secure cookies off plain http, so the browser's cookie is sent by hand.
        response = await https_client.post(
            "/console/login",
            data={"csrf_token": token, "name": "ana", "password": PASSWORD},
            headers={"Cookie": f"ventanilla_login_csrf={token}"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert set_cookie(response, "ventanilla_session")["secure"] is True
