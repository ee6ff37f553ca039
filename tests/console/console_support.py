"""Helpers for the console's page tests: console users, signing in through the form, and
the CSRF token read off a page as a browser would."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from config.app import Services
from console.passwords import Passwords
from storage.console_sessions import ConsoleUser, SetPassword

Client = TestClient[Any, Any]
PASSWORD = "contraseña-segura"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def add_user(
    services: Services,
    name: str,
    role: str = "ops",
    password: str = PASSWORD,
    technician_id: int | None = None,
) -> ConsoleUser:
    password_hash = await Passwords().hash(password)
    user: ConsoleUser = await services.writes.submit(
        SetPassword(name, password_hash, role=role, technician_id=technician_id)
    )
    return user


def csrf_in(html: str) -> str:
    """The first form's CSRF token on a page."""
    found = _CSRF.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


async def post_login(
    client: Client, name: str, password: str = PASSWORD, next_path: str = "", **headers: str
) -> ClientResponse:
    form = await client.get("/console/login", headers=headers)
    assert form.status == 200, await form.text()
    data = {
        "csrf_token": csrf_in(await form.text()),
        "name": name,
        "password": password,
        "next": next_path,
    }
    return await client.post("/console/login", data=data, allow_redirects=False, headers=headers)


async def sign_in(client: Client, name: str, password: str = PASSWORD) -> None:
    response = await post_login(client, name, password)
    assert response.status == 303, await response.text()
