"""Firebase Cloud Messaging, HTTP v1 API: one notification to one app instance
(registration token) or, for a recipient ``/topics/<name>``, to a topic.

``POST {api_base_url}/v1/projects/{project_id}/messages:send`` with a bearer token from
the service account (``notifiers.push_fcm_auth``). FCM's answer decides (FCM docs,
"ErrorCode" of the v1 API): 200 sent, its message ``name`` the provider id; UNREGISTERED
(404) the token is gone and its technician's channel forgotten; QUOTA_EXCEEDED (429),
UNAVAILABLE (503) and INTERNAL (500) later, after Retry-After; 401 once more with a fresh
access token; INVALID_ARGUMENT and every other refusal never.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from notifiers.base import Delivered, Outgoing, PermanentError
from notifiers.push_credentials import parse_service_account
from notifiers.push_fcm_auth import AccessTokens
from notifiers.push_http import (
    ID_CHARS,
    RESPONSE_CHARS,
    Answer,
    PushContent,
    PushHttp,
    clip,
    refusal,
)

DEFAULT_API_BASE_URL = "https://fcm.googleapis.com"
TOPIC_PREFIX = "/topics/"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass(frozen=True)
class FcmConfig:
    service_account: str = field(repr=False)  # the service-account JSON
    api_base_url: str = DEFAULT_API_BASE_URL
    project_id: str = ""  # default: the service account's
    token_uri: str = ""  # default: the service account's
    concurrency: int = 8
    timeout_seconds: float = 10.0


def fcm_error(answer: Answer) -> tuple[str, str]:
    """The FCM error code (the FcmError detail's, else the google.rpc status) and its
    message, from an error answer."""
    data = answer.json()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code = str(error.get("status") or "")
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            code = str(detail.get("errorCode") or code)
    return code, str(error.get("message") or "")


class FcmNotifier:
    channel = "push"

    def __init__(
        self, name: str, config: FcmConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.concurrency = max(1, config.concurrency)
        account = parse_service_account(config.service_account)
        self.project_id = config.project_id or account.project_id
        if not self.project_id:
            raise ValueError("the service account names no project_id")
        self.http = PushHttp(
            f"FCM {name}", timeout_seconds=config.timeout_seconds, concurrency=self.concurrency
        )
        self.tokens = AccessTokens(
            account, self.http, config.token_uri or account.token_uri, clock=clock
        )
        base = config.api_base_url.rstrip("/")
        self.url = f"{base}/v1/projects/{quote(self.project_id, safe='')}/messages:send"

    async def start(self) -> None:
        self.http.session()

    async def stop(self) -> None:
        await self.http.close()

    @staticmethod
    def body(message: Outgoing) -> dict[str, Any]:
        content = PushContent.of(message)
        target = message.recipient.strip()
        found: dict[str, Any] = (
            {"topic": target[len(TOPIC_PREFIX) :]}
            if target.startswith(TOPIC_PREFIX)
            else {"token": target}
        )
        found["notification"] = {"title": content.title, "body": content.body}
        if content.url:
            found["data"] = {"url": content.url}  # data values must be strings
            if content.url.startswith("https://"):
                # FCM refuses a web link that is not HTTPS (INVALID_ARGUMENT).
                found["webpush"] = {"fcm_options": {"link": content.url}}
        return {"message": found}

    async def send(self, message: Outgoing) -> Delivered:
        body = self.body(message)
        token = await self.tokens.get()
        answer = await self._post(body, token)
        if answer.status == 401 and fcm_error(answer)[0] != "THIRD_PARTY_AUTH_ERROR":
            # Our access token was revoked or expired early: a fresh one, once. (A
            # THIRD_PARTY_AUTH_ERROR is APNs or Web Push refusing FCM: no token helps.)
            self.tokens.invalidate(token)
            answer = await self._post(body, await self.tokens.get())
        if answer.status == 200:
            data = answer.json()
            name = data.get("name") if isinstance(data, dict) else None
            return Delivered(
                clip(str(name or ""), ID_CHARS), "200", clip(answer.text, RESPONSE_CHARS)
            )
        code, said = fcm_error(answer)
        full_code = f"{answer.status} {code}".strip()
        if answer.status == 404 or code == "UNREGISTERED":
            raise refusal(self.http.provider, answer, code=full_code,
                          reason="registration token gone", gone=True)  # fmt: skip
        if answer.status == 401 and code != "THIRD_PARTY_AUTH_ERROR":
            raise PermanentError(
                f"{self.http.provider}: a fresh access token was refused too ({said})",
                code=full_code,
                response=clip(answer.text, RESPONSE_CHARS),
            )
        raise refusal(self.http.provider, answer, code=full_code, reason=said or code)

    async def _post(self, body: dict[str, Any], token: str) -> Answer:
        return await self.http.post(
            self.url, json_body=body, headers={"Authorization": f"Bearer {token}"}
        )
