"""Checking that a webhook really comes from the SMS provider: pure functions over the
request's parts, shared by the status callbacks (``notifiers.sms_callbacks``) and the SMS
intake (``intake.sms_*``), so neither imports the other.

Twilio (``X-Twilio-Signature``, "Webhooks security" in Twilio's docs): the full URL
Twilio requested, followed by every POST parameter sorted by name (and the values of a
repeated name sorted too) as name+value with no delimiters, signed with HMAC-SHA1 keyed
by the account's auth token, Base64-encoded.

Vonage (``sig``, "Signing messages" in Vonage's docs): every parameter but ``sig``,
sorted by name, as ``&name=value`` with ``&`` and ``=`` in values replaced by ``_``;
``md5hash`` appends the signature secret and takes MD5, the HMAC methods (md5, sha1,
sha256, sha512) key an HMAC with the secret; the hex digest is compared without regard
to case.

A generic gateway: either a shared secret sent as a header, or the hex HMAC-SHA256 of
the raw body keyed by that secret (optionally written ``sha256=<hex>``, as several
gateways do).

Every comparison runs in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

VONAGE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")


def twilio_signature(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    signed = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(set(grouped[name]))
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_valid(
    url: str, params: Iterable[tuple[str, str]], auth_token: str, signature: str | None
) -> bool:
    if not signature or not auth_token:
        return False
    expected = twilio_signature(url, params, auth_token)
    return hmac.compare_digest(expected.encode(), signature.encode())


def vonage_signature(params: Mapping[str, str], secret: str, method: str) -> str:
    signed = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((signed + secret).encode(), usedforsecurity=False).hexdigest()
    if method not in VONAGE_METHODS:
        raise ValueError(f"unknown signature method {method!r}")
    return hmac.new(secret.encode(), signed.encode(), method).hexdigest()


def vonage_valid(params: Mapping[str, str], secret: str, method: str) -> bool:
    signature = params.get("sig")
    if not signature or not secret:
        return False
    expected = vonage_signature(params, secret, method)
    return hmac.compare_digest(expected.lower().encode(), signature.lower().encode())


def shared_secret_valid(given: str | None, secret: str) -> bool:
    """A header that must carry the shared secret as it is."""
    if not given or not secret:
        return False
    return hmac.compare_digest(given.encode(), secret.encode())


def body_hmac(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body_hmac_valid(body: bytes, secret: str, signature: str | None) -> bool:
    """``signature``: the hex HMAC-SHA256 of ``body``, bare or as ``sha256=<hex>``."""
    if not signature or not secret:
        return False
    given = signature.strip()
    if given.lower().startswith("sha256="):
        given = given[7:]
    expected = body_hmac(body, secret)
    return hmac.compare_digest(expected.encode(), given.lower().encode())
