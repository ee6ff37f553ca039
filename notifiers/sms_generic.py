"""SMS through any HTTP gateway described in the configuration (``[sms.generic]``).

The request body is a Jinja2 template rendered with ``to`` (E.164), ``from``, ``text``
and ``idempotency_key`` (so a gateway that deduplicates sends a retry once); it is
sandboxed and strict, since its output goes to a third party. Templates should escape
for their content type: ``{{ text|tojson }}`` in JSON, ``{{ text|urlencode }}`` in a
form. An answer whose status is in ``success_codes`` is sent, and the provider's id is
read from the JSON answer at ``message_id_path`` (dotted keys, numbers index lists:
``messages.0.id``); 408, 429 and 5xx are retried, any other status is a refusal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from notifiers.base import Delivered, Outgoing, PermanentError
from notifiers.sms_http import HttpClient, refused
from notifiers.sms_numbers import recipient_number
from notifiers.sms_segments import sms_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenericSmsConfig:
    url: str
    body_template: str
    from_number: str = ""
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold a key
    content_type: str = "application/json"
    auth_token: str = field(default="", repr=False)  # sent as the Authorization header
    success_codes: tuple[int, ...] = (200, 201, 202)
    message_id_path: str = ""
    default_region: str = "AR"
    concurrency: int = 4
    timeout_seconds: float = 15.0


def compile_body(template: str) -> jinja2.Template:
    """The body template, compiled (a syntax error raises ``jinja2.TemplateSyntaxError``)."""
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(template)


def find_path(document: Any, path: str) -> Any:
    """The value at a dotted ``path`` in a JSON document, or None."""
    node = document
    for step in path.split("."):
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.lstrip("-").isdigit():
            index = int(step)
            node = node[index] if -len(node) <= index < len(node) else None
        else:
            return None
    return node


class GenericSmsNotifier:
    channel = "sms"

    def __init__(self, config: GenericSmsConfig, name: str = "generic") -> None:
        self.config = config
        self.name = name
        self.concurrency = max(1, config.concurrency)
        self.body = compile_body(config.body_template)
        self.http = HttpClient("SMS gateway", config.timeout_seconds, self.concurrency)

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()

    def render(self, message: Outgoing) -> str:
        cfg = self.config
        context = {
            "to": recipient_number(message.recipient, cfg.default_region),
            "from": cfg.from_number,
            "text": sms_text(message.text),
            "idempotency_key": message.idempotency_key,
        }
        try:
            return self.body.render(context)
        except jinja2.TemplateError as exc:
            raise PermanentError(f"sms.generic.body_template: {exc}") from exc

    async def send(self, message: Outgoing) -> Delivered:
        cfg = self.config
        body = self.render(message)
        headers = {"Content-Type": cfg.content_type, **cfg.headers}
        if cfg.auth_token:
            headers["Authorization"] = cfg.auth_token
        answer = await self.http.request(
            cfg.method, cfg.url, data=body.encode("utf-8"), headers=headers
        )
        if answer.status not in cfg.success_codes:
            raise refused("SMS gateway", answer, None, answer.text[:200] or "no reason given")
        provider_id = None
        if cfg.message_id_path:
            found = find_path(answer.json(), cfg.message_id_path)
            if found is None or isinstance(found, dict | list):
                log.warning("sms.generic: no message id at %r in the answer", cfg.message_id_path)
            else:
                provider_id = str(found)
        return Delivered(provider_id, str(answer.status), answer.text)
