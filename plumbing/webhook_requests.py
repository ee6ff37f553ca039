"""Reading a provider's webhook fields from an aiohttp request, however it was sent.

Vonage calls a webhook with GET (fields in the query) or POST (a form or a JSON body), as
the account's settings say ("Webhooks" in Vonage's docs); the signature covers the fields
whichever way they came, so every way yields the same flat ``name → text`` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web


async def webhook_params(request: web.Request) -> dict[str, str]:
    """The query's fields, with a POST's form or JSON object fields over them."""
    params: dict[str, str] = dict(request.query)
    if request.method == "POST":
        body: Mapping[str, Any]
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError:
                raise web.HTTPBadRequest(text="the body is not JSON") from None
            if not isinstance(data, dict):
                raise web.HTTPBadRequest(text="the body is not a JSON object")
            body = data
        else:
            body = await request.post()
        params.update({k: v if isinstance(v, str) else _text(v) for k, v in body.items()})
    return params


def _text(value: Any) -> str:
    # JSON true/false as the form would carry them ("true"), numbers as written.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
