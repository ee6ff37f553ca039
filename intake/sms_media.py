"""Fetching the files of an inbound MMS from Twilio (``MediaUrl0`` … in the webhook).

Twilio keeps an MMS's media at URLs under its API (``/2010-04-01/Accounts/{AccountSid}/
Messages/{MessageSid}/Media/{MediaSid}``); with "HTTP Basic Authentication for media
access" on (Twilio's "Messaging → Settings"), they are read with the account SID and auth
token, which we always send. Only URLs under ``[sms.twilio] api_base_url`` are fetched: the
credentials never go to any other host, and the webhook cannot make the daemon fetch an
arbitrary address. Twilio answers with a redirect to its media store; aiohttp drops the
Authorization header when a redirect leaves the origin.

Each file is written to the attachment store before the message is accepted, as the web
form's files are. A file that cannot be fetched (too large, a timeout, an error) is noted
in the message's text instead; the raw request keeps its URL, so nothing is lost.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from intake.attachments import AttachmentStore
from intake.message import Attachment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaConfig:
    account_sid: str
    auth_token: str = field(repr=False)
    api_base_url: str = "https://api.twilio.com"
    max_files: int = 10
    max_file_bytes: int = 10_485_760
    max_total_bytes: int = 26_214_400
    timeout_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class Fetched:
    attachments: tuple[Attachment, ...]
    missing: tuple[str, ...]  # a short reason per file that could not be fetched


class TwilioMedia:
    def __init__(self, config: MediaConfig, store: AttachmentStore) -> None:
        self.config = config
        self.store = store
        self._session: aiohttp.ClientSession | None = None
        base = urlsplit(config.api_base_url)
        self._origin = (base.scheme, base.netloc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            credentials = f"{self.config.account_sid}:{self.config.auth_token}".encode()
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds),
                # aiohttp drops this header when a redirect leaves the origin.
                headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
            )
        return self._session

    async def fetch(self, fields: dict[str, str]) -> Fetched:
        """The files ``NumMedia`` announces, stored; the reasons for those that are not."""
        announced = fields.get("NumMedia", "")
        count = int(announced) if announced.isdigit() else 0
        attachments: list[Attachment] = []
        missing: list[str] = []
        total = 0
        for index in range(count):
            url = fields.get(f"MediaUrl{index}", "")
            content_type = fields.get(f"MediaContentType{index}", "application/octet-stream")
            if index >= self.config.max_files:
                missing.append(f"{content_type}: more than {self.config.max_files} files")
                continue
            got = await self._one(url, content_type, self.config.max_total_bytes - total)
            if isinstance(got, str):
                log.warning("MMS media %s not fetched: %s", url, got)
                missing.append(f"{content_type}: {got}")
            else:
                total += got.size
                attachments.append(got)
        return Fetched(tuple(attachments), tuple(missing))

    async def _one(self, url: str, content_type: str, room: int) -> Attachment | str:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin:
            return "not a URL of the configured Twilio API"
        limit = min(self.config.max_file_bytes, room)
        try:
            async with self._client().get(url) as response:
                if response.status != 200:
                    return f"HTTP {response.status}"
                data = await response.content.read(limit + 1)
                if len(data) > limit:
                    return f"larger than {limit} bytes"
                content_type = response.content_type or content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        name = parts.path.rstrip("/").rsplit("/", 1)[-1] or "mms"
        extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        return await self.store.save(data, name + extension, content_type)
