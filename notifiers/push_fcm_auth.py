"""OAuth2 access tokens for FCM HTTP v1, from a service account.

The JWT-bearer grant (RFC 7523 §2.1; Google's "Using OAuth 2.0 for Server to Server
Applications"): a JWT naming the account, the FCM scope and the token URI, signed RS256
with the account's key, is exchanged at the token URI for a bearer token. The token is
kept until shortly before it expires and fetched once however many sends wait for it;
FCM refusing it (401) makes the notifier drop it and fetch a new one.

Signing is one RSA operation per token (about an hour apart), so it runs on the loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from notifiers.base import TransientError
from notifiers.push_credentials import ServiceAccount, b64url
from notifiers.push_http import Answer, PushHttp, refusal

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600  # Google refuses an assertion valid for more than an hour
RENEW_SECONDS = 300.0  # a token is fetched anew this long before it expires


class AccessTokens:
    def __init__(
        self,
        account: ServiceAccount,
        http: PushHttp,
        token_uri: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.http = http
        self.token_uri = token_uri
        self.clock = clock  # when the cached token runs out
        self.wall_clock = wall_clock  # the assertion's iat/exp
        self._token: str | None = None
        self._good_until = 0.0
        self._lock = asyncio.Lock()

    def assertion(self) -> str:
        """The signed JWT (RS256, RFC 7515 / 7518 §3.3)."""
        now = int(self.wall_clock())
        header = {"alg": "RS256", "typ": "JWT"}
        if self.account.private_key_id:
            header["kid"] = self.account.private_key_id
        claims = {
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_SECONDS,
        }
        signing_input = f"{_segment(header)}.{_segment(claims)}".encode("ascii")
        signature = self.account.private_key.sign(
            signing_input, padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"

    def _cached(self) -> str | None:
        return self._token if self._token and self.clock() < self._good_until else None

    async def get(self) -> str:
        cached = self._cached()
        if cached:
            return cached
        async with self._lock:  # one fetch, however many sends are waiting
            cached = self._cached()
            if cached:
                return cached
            token, lifetime = await self._fetch()
            self._token = token
            self._good_until = self.clock() + lifetime - min(RENEW_SECONDS, lifetime / 2)
            return token

    def invalidate(self, token: str) -> None:
        """FCM refused ``token``: the next ``get`` fetches another (unless one did already)."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        answer = await self.http.post(
            self.token_uri, data={"grant_type": GRANT_TYPE, "assertion": self.assertion()}
        )
        if answer.status != 200:
            error, description = _oauth_error(answer)
            raise refusal(
                "the OAuth token endpoint",
                answer,
                code=f"oauth {error}" if error else None,
                reason=f"{error}: {description}" if description else error,
            )
        data = answer.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise TransientError("the OAuth token endpoint answered no access_token", code="oauth")
        lifetime = data.get("expires_in", 3600)
        return token, float(lifetime) if isinstance(lifetime, int | float) else 3600.0


def _segment(part: Mapping[str, object]) -> str:
    return b64url(json.dumps(part, separators=(",", ":")).encode())


def _oauth_error(answer: Answer) -> tuple[str, str]:
    """RFC 6749 §5.2: ``error`` and ``error_description``."""
    data = answer.json()
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("error") or ""), str(data.get("error_description") or "")
