"""Stateless CSRF tokens for the web form: ``<issued-at>.<nonce>.<HMAC>``.

The form is anonymous, so there is no session to bind a token to; the token proves that a
post comes from a form this service rendered recently (scripted cross-site posts and
stale replays fail) without keeping any state, so every daemon sharing the secret key
accepts tokens any of them issued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

MAX_AGE_SECONDS = 2 * 60 * 60
CLOCK_SKEW_SECONDS = 60  # several daemons behind one proxy may disagree slightly
MAX_TOKEN_LENGTH = 200


class CsrfTokens:
    def __init__(
        self,
        secret_key: bytes,
        *,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A key of its own, so a signature made here is worth nothing anywhere else the
        # daemon's secret key is used.
        self._key = hmac.new(secret_key, b"ventanilla/csrf/v1", hashlib.sha256).digest()
        self.max_age = max_age
        self._clock = clock

    def issue(self) -> str:
        payload = f"{int(self._clock())}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: object) -> bool:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            return False
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1]:
            return False
        age = self._clock() - int(parts[0])
        if not -CLOCK_SKEW_SECONDS <= age <= self.max_age:
            return False
        expected = self._sign(f"{parts[0]}.{parts[1]}")
        return hmac.compare_digest(expected.encode("ascii"), parts[2].encode("ascii", "replace"))

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
