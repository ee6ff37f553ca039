"""The HTTP edge the SMS notifiers share: one aiohttp session per notifier, a timeout on
every request, and the translation of what went wrong into the error taxonomy.

A connection refused, a reset or a timeout is transient (the provider may well have
nothing of ours; a retry carries the same idempotency key). An answer's status decides
the rest: 408, 429 and 5xx are transient and honour ``Retry-After`` (RFC 9110 §10.2.3: a
number of seconds or an HTTP date); any other refusal is permanent. Error texts name the
provider and its host only: request bodies and URLs can carry credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from notifiers.base import PermanentError, TransientError

TRANSIENT_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    retry_after: float | None = None

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES or self.status >= 500


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def refused(
    provider: str, answer: Answer, code: str | None, message: str
) -> TransientError | PermanentError:
    """The error for an answer that is not a success."""
    text = f"{provider}: HTTP {answer.status}" + (f" {code}" if code else "") + f": {message}"
    if answer.transient:
        return TransientError(
            text, retry_after=answer.retry_after, code=code or str(answer.status),
            response=answer.text,
        )  # fmt: skip
    return PermanentError(text, code=code or str(answer.status), response=answer.text)


class HttpClient:
    """One session (a pool of ``concurrency`` connections), opened by ``start``."""

    def __init__(self, provider: str, timeout_seconds: float, concurrency: int) -> None:
        self.provider = provider
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.concurrency = max(1, concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                headers={"User-Agent": "Ventanilla"},
            )

    async def stop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        if self._session is None or self._session.closed:
            await self.start()
        assert self._session is not None
        host = urlsplit(url).netloc
        try:
            async with self._session.request(method, url, **kwargs) as response:
                text = await response.text(errors="replace")
                return Answer(
                    response.status, text, retry_after(response.headers.get("Retry-After"))
                )
        except TimeoutError as exc:
            raise TransientError(f"{self.provider}: timed out waiting for {host}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientError(
                f"{self.provider}: cannot reach {host}: {type(exc).__name__}"
            ) from exc
