"""Receipts for the confirmation page: the case numbers a browser was just given.

``GET /form/thanks?case=CAS-000123`` shows the number only when the browser holds a receipt
for it: a short-lived cookie, signed with the daemon's secret key, that ``POST /form`` sets
on its redirect. A crafted link (``?case=`` with any text, or another customer's number)
therefore shows no number: the page never vouches for a case it did not just create for
this browser. The cookie keeps the last few numbers, so forms sent from two tabs both show
their own. Like the CSRF tokens, receipts need no server state, so every daemon sharing
the secret key honours the receipts any of them issued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable

COOKIE = "ventanilla_receipt"
COOKIE_PATH = "/form"  # read by the thanks page, added to by POST /form; sent nowhere else
MAX_AGE_SECONDS = 15 * 60
MAX_RECEIPTS = 5
MAX_COOKIE_LENGTH = 1000
CLOCK_SKEW_SECONDS = 60  # several daemons behind one proxy may disagree slightly


class Receipts:
    def __init__(
        self,
        secret_key: bytes,
        *,
        max_age: int = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A key of its own: a receipt signature is worth nothing as a CSRF token, and the
        # other way round.
        self._key = hmac.new(secret_key, b"ventanilla/receipt/v1", hashlib.sha256).digest()
        self.max_age = max_age
        self._clock = clock

    def add(self, cookie: str | None, number: str) -> str:
        """The cookie value once ``number`` is given to the browser that sent ``cookie``:
        its other fresh receipts kept, the oldest dropped past ``MAX_RECEIPTS``."""
        kept = [(n, t) for n, t in self._receipts(cookie) if n != number]
        kept.append((number, int(self._clock())))
        payload = _b64(json.dumps(kept[-MAX_RECEIPTS:], separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def holds(self, cookie: str | None, number: str) -> bool:
        """True when the cookie is ours, unaltered, and vouches for ``number`` still."""
        return any(n == number for n, _ in self._receipts(cookie))

    def _receipts(self, cookie: str | None) -> list[tuple[str, int]]:
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return []
        payload, _, signature = cookie.partition(".")
        if not payload.isascii():
            return []
        expected = self._sign(payload)
        if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
            return []
        try:
            # Signed by us, so well formed; checked all the same, as a key rotation or an
            # older format must read as "no receipt", never as an error.
            items = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            receipts = [(str(n), int(t)) for n, t in items]
        except (ValueError, TypeError, binascii.Error):
            return []
        now = self._clock()
        return [(n, t) for n, t in receipts if -CLOCK_SKEW_SECONDS <= now - t <= self.max_age]

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
