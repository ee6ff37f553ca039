"""The credentials push providers are configured with, parsed and checked once: the VAPID
signing key of Web Push (RFC 8292) and a Google service account (FCM HTTP v1).

Settings validation calls these, so a bad key is a config error naming its key before
anything starts; the notifiers are built from the same parsed values. No message here
ever quotes key material.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2), as JWTs and Web Push keys are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    raw = text.encode("ascii") if isinstance(text, str) else text
    raw = b"".join(raw.split())
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def load_vapid_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key: PEM (PKCS#8 or SEC 1), or base64url of either the raw 32-byte
    scalar (what most Web Push libraries print) or DER."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        else:
            raw = b64url_decode(text)
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = serialization.load_der_private_key(raw, password=None)
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise ValueError(
            "not a private key: expected PEM, or base64url of the raw key or of DER"
        ) from None
    # RFC 8292 §3.2: the application server key is on P-256, signatures are ES256.
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("must be an EC P-256 private key (RFC 8292 §3.2)")
    return key


def vapid_public_key(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key browsers subscribe with (uncompressed point, base64url)."""
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a Google service-account JSON that the OAuth2 JWT flow needs."""

    client_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str = ""
    project_id: str = ""
    token_uri: str = GOOGLE_TOKEN_URI


def parse_service_account(text: str) -> ServiceAccount:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError("not a service-account JSON object")
    kind = data.get("type", "service_account")
    if kind != "service_account":
        raise ValueError(f'has type {kind!r}, not "service_account"')
    missing = [k for k in ("client_email", "private_key") if not _text(data.get(k))]
    if missing:
        raise ValueError(f"the service account has no {' or '.join(missing)}")
    try:
        key = serialization.load_pem_private_key(data["private_key"].encode("ascii"), None)
    except (ValueError, TypeError, UnicodeError):
        raise ValueError("the service account's private_key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the service account's private_key is not an RSA key (RS256)")
    return ServiceAccount(
        client_email=data["client_email"],
        private_key=key,
        private_key_id=_text(data.get("private_key_id")),
        project_id=_text(data.get("project_id")),
        token_uri=_text(data.get("token_uri")) or GOOGLE_TOKEN_URI,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
