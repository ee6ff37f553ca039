"""What the push notifiers share: one aiohttp session per provider, one POST with a
deadline, and the translation of what can go wrong on the way (no connection, no answer
in time, 429 or 5xx with Retry-After, any other refusal) into ``TransientError`` or
``PermanentError``; and what every push message shows (title, body, optional link).

Error texts never quote a request URL: a Web Push endpoint is a capability (RFC 8030 §8),
and the recipient is in the row already.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict

from notifiers.base import Outgoing, PermanentError, TransientError

# The attempt log's columns: provider_code VARCHAR(40), provider_message_id VARCHAR(200).
CODE_CHARS = 40
ID_CHARS = 200
RESPONSE_CHARS = 2000


def clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


@dataclass(frozen=True, slots=True)
class PushContent:
    """What a notification shows: the subject as its title (else the first line of the
    text), the text as its body, and the link of a ``url`` extra, when the row has one."""

    title: str
    body: str
    url: str | None = None

    @classmethod
    def of(cls, message: Outgoing) -> PushContent:
        text = message.text.strip()
        title = " ".join(message.subject.split())
        if not title:
            title, _, text = text.partition("\n")
            title, text = title.strip(), text.strip()
        url = message.headers.get("url")
        return cls(title, text, str(url) if url else None)

    def as_dict(self) -> dict[str, str]:
        found = {"title": self.title, "body": self.body}
        if self.url:
            found["url"] = self.url
        return found


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def refusal(
    provider: str,
    answer: Answer,
    *,
    code: str | None = None,
    reason: str = "",
    gone: bool = False,
) -> TransientError | PermanentError:
    """The error an unsuccessful answer means: 408, 429 and 5xx are worth another try
    (after Retry-After when given); anything else will never go."""
    status = answer.status
    said = f"{provider} answered {status}" + (f": {reason}" if reason else "")
    code = clip(code or str(status), CODE_CHARS)
    response = clip(answer.text, RESPONSE_CHARS)
    if status in (408, 429) or status >= 500:
        wait = retry_after(answer.headers.get("Retry-After"))
        return TransientError(said, retry_after=wait, code=code, response=response)
    return PermanentError(said, code=code, response=response, gone=gone)


class PushHttp:
    """One provider's HTTP client: a session opened on start (or first use), kept for
    connection reuse, closed on stop."""

    def __init__(self, provider: str, *, timeout_seconds: float, concurrency: int) -> None:
        self.provider = provider
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=max(1, self.concurrency))
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def post(
        self,
        url: str,
        *,
        data: bytes | str | Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """POST and read the whole answer; a network failure or a timeout is transient."""
        try:
            async with self.session().post(
                url, data=data, json=json_body, headers=dict(headers or {})
            ) as response:
                text = await response.text(errors="replace")
                return Answer(response.status, CIMultiDict(response.headers), text)
        except TimeoutError as exc:
            raise TransientError(
                f"{self.provider}: no answer within {self.timeout.total:g} s", code="timeout"
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"{self.provider}: not a valid URL", code="url") from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransientError(
                f"{self.provider}: cannot connect to {exc.host}:{exc.port}: "
                f"{exc.os_error.strerror or type(exc.os_error).__name__}",
                code="connect",
            ) from exc
        except aiohttp.ClientError as exc:
            # Only the type: some aiohttp errors print the request URL.
            raise TransientError(
                f"{self.provider}: {type(exc).__name__}", code="connection"
            ) from exc
