"""ntfy (the public ntfy.sh or a self-hosted server): one notification to one topic.

``POST {api_base_url}/{topic}`` with the text as the body, the subject in ``Title``,
the link in ``Click`` and, when one is configured, the access token as a bearer token
(ntfy docs, "Publishing" and "Access tokens"). ntfy's answer decides: 200 sent, its
message ``id`` the provider id; 429 and 5xx later, after Retry-After; any other 4xx
(an unknown or forbidden topic, a refused token) never.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from notifiers.base import Delivered, Outgoing, PermanentError
from notifiers.push_http import (
    ID_CHARS,
    RESPONSE_CHARS,
    Answer,
    PushContent,
    PushHttp,
    clip,
    refusal,
)

DEFAULT_API_BASE_URL = "https://ntfy.sh"
TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")  # what ntfy accepts as a topic name
PRIORITIES = ("1", "2", "3", "4", "5", "min", "low", "default", "high", "urgent", "max")


@dataclass(frozen=True)
class NtfyConfig:
    api_base_url: str = DEFAULT_API_BASE_URL
    token: str = field(default="", repr=False)
    concurrency: int = 8
    timeout_seconds: float = 10.0


def header_value(text: str) -> str:
    """A header value as ntfy reads it: ASCII as is, anything else as one RFC 2047
    encoded-word, which ntfy decodes (HTTP header values are not reliably UTF-8)."""
    text = " ".join(text.split())
    if text.isascii() and "=?" not in text:
        return text
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode('ascii')}?="


def ntfy_error(answer: Answer) -> tuple[str, str]:
    """ntfy's error JSON: ``{"code": 42901, "http": 429, "error": "limit reached …"}``."""
    data = answer.json()
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("code") or ""), str(data.get("error") or "")


class NtfyNotifier:
    channel = "push"

    def __init__(self, name: str, config: NtfyConfig) -> None:
        self.name = name
        self.config = config
        self.concurrency = max(1, config.concurrency)
        self.base_url = config.api_base_url.rstrip("/")
        self.http = PushHttp(
            f"ntfy {name}", timeout_seconds=config.timeout_seconds, concurrency=self.concurrency
        )

    async def start(self) -> None:
        self.http.session()

    async def stop(self) -> None:
        await self.http.close()

    def headers(self, message: Outgoing, content: PushContent) -> dict[str, str]:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if content.title:
            headers["Title"] = header_value(content.title)
        if content.url:
            headers["Click"] = header_value(content.url)
        priority = str(message.headers.get("priority", ""))
        if priority in PRIORITIES:
            headers["Priority"] = priority
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        return headers

    async def send(self, message: Outgoing) -> Delivered:
        topic = message.recipient.strip()
        if not TOPIC.fullmatch(topic):
            raise PermanentError(
                "the recipient is not an ntfy topic (1-64 of A-Z a-z 0-9 _ -)", code="topic"
            )
        content = PushContent.of(message)
        if not content.body:
            # ntfy shows "triggered" for an empty message: a one-line notice is its title.
            content = PushContent("", content.title, content.url)
        answer = await self.http.post(
            f"{self.base_url}/{topic}",
            data=content.body.encode(),
            headers=self.headers(message, content),
        )
        if answer.status == 200:
            data = answer.json()
            message_id = data.get("id") if isinstance(data, dict) else None
            return Delivered(
                clip(str(message_id or ""), ID_CHARS), "200", clip(answer.text, RESPONSE_CHARS)
            )
        code, said = ntfy_error(answer)
        raise refusal(
            self.http.provider,
            answer,
            code=f"{answer.status} {code}".strip(),
            reason=said or answer.text.strip()[:200],
        )
