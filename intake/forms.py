"""Validation shared by the web form and the JSON intake API, and their HTTP edge helpers.

Both entry points take the same customer fields (name, email, phone, subject, description,
category, sub-reason); this module checks and normalizes them once (email lower-cased,
phone E.164, category and sub-reason in their catalog spelling) and builds the
``InboundMessage``. It also holds the small pieces of HTTP both need: content negotiation
(Accept, Accept-Language), bounded body reading and the JSON error shape.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from aiohttp import web
from email_validator import EmailNotValidError, validate_email

from intake.message import Address, Attachment, Channel, InboundMessage, content_fingerprint
from routing.catalog import CatalogSnapshot

LANGUAGES = ("es", "en")
MAX_NAME = 200
MAX_SUBJECT = 200
MAX_DESCRIPTION = 20_000
MAX_PHONE_INPUT = 40
DERIVED_SUBJECT = 80  # a subject taken from the description's first line
# Unknown keys named in one answer: enough for any honest mistake, few enough that a body
# of thousands of made-up keys costs neither CPU (spelling hints) nor a huge answer.
MAX_UNKNOWN_NAMED = 20
# Bodies without files (JSON, urlencoded, the text parts of a multipart post): generous for
# a 20,000-character description even when percent-encoded, small next to file limits.
FIELDS_MAX_BYTES = 512 * 1024

MESSAGES: dict[str, dict[str, str]] = {
    "es": {
        "summary": "Revise los datos marcados.",
        "not_text": "Debe ser un texto.",
        "not_object": "Debe ser un objeto JSON.",
        "too_long": "Use como máximo {max} caracteres.",
        "contact_required": "Indique un correo electrónico o un teléfono.",
        "bad_email": "El correo electrónico no es válido; revise que esté completo.",
        "bad_phone": "El teléfono no es válido; incluya el código de área.",
        "description_required": "Describa su consulta.",
        "unknown_category": "Elija uno de los motivos de la lista.",
        "subreason_without_category": "Elija primero el motivo de la consulta.",
        "subreason_not_of_category": "Ese detalle no corresponde al motivo elegido.",
        "bad_language": "Idioma no disponible; use es o en.",
        "bad_id": "Identificador no válido.",
        "id_reused": "Este identificador ya se usó para otro mensaje.",
        "unknown_field": "Campo desconocido. Campos conocidos: {known}.",
        "unknown_field_hint": "Campo desconocido; ¿quiso decir {hint}? Campos conocidos: {known}.",
        "files_need_multipart": "Los archivos se envían solo en un cuerpo multipart/form-data.",
    },
    "en": {
        "summary": "Please check the marked fields.",
        "not_text": "Must be text.",
        "not_object": "Must be a JSON object.",
        "too_long": "Use at most {max} characters.",
        "contact_required": "Give an email address or a phone number.",
        "bad_email": "The email address is not valid: {detail}",
        "bad_phone": "The phone number is not valid; include the area code.",
        "description_required": "Please describe your request.",
        "unknown_category": "Choose one of the reasons in the list.",
        "subreason_without_category": "Choose the reason first.",
        "subreason_not_of_category": "That detail does not belong to the chosen reason.",
        "bad_language": "Language not available; use es or en.",
        "bad_id": "Not a valid identifier.",
        "id_reused": "This identifier was already used for a different message.",
        "unknown_field": "Unknown field. Known fields: {known}.",
        "unknown_field_hint": "Unknown field; did you mean {hint}? Known fields: {known}.",
        "files_need_multipart": "Files can be sent only in a multipart/form-data body.",
    },
}

# C0 controls except tab/newline, DEL, and lone surrogates (JSON can carry "\ud800"): none
# is meaningful in a support message, and PostgreSQL refuses NUL in text and jsonb.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class Rejected(Exception):
    """A request refused at the edge; ``reason`` labels the rejection metric."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        reason: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, headers=self.headers)


class ValidationFailed(Exception):
    """Per-field problems, already worded in the request's language."""

    def __init__(self, fields: dict[str, str], language: str) -> None:
        super().__init__(", ".join(sorted(fields)))
        self.fields = fields
        self.language = language

    def response(self, rename: Mapping[str, str] | None = None) -> web.Response:
        rename = rename or {}
        fields = {rename.get(name, name): text for name, text in self.fields.items()}
        message = MESSAGES[self.language]["summary"]
        return error_response(422, "validation_failed", message, fields=fields)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """The house JSON error shape ``{"error": {"code", "message", ...}}``."""
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(
        body, status=status, headers=headers, dumps=lambda v: json.dumps(v, ensure_ascii=False)
    )


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated customer submission, independent of the channel it came from."""

    name: str
    email: str | None
    phone: str | None
    subject: str
    text: str
    category: str | None
    subreason: str | None
    language: str

    def fingerprint(self) -> str:
        """What the sender said: a repeat with the same id and other content is not a
        retransmission."""
        return content_fingerprint(
            self.name,
            self.email or "",
            self.phone or "",
            self.subject,
            self.text,
            self.category or "",
            self.subreason or "",
            self.language,
        )

    def message(
        self,
        channel: Channel,
        external_id: str,
        raw: bytes,
        attachments: tuple[Attachment, ...] = (),
        *,
        fingerprint: str | None = None,
    ) -> InboundMessage:
        return InboundMessage(
            channel=channel,
            external_id=external_id,
            sender=Address(name=self.name, email=self.email, phone=self.phone),
            raw=raw,
            subject=self.subject,
            text=self.text,
            attachments=attachments,
            category=self.category,
            subreason=self.subreason,
            language=self.language,
            fingerprint=fingerprint,
        )


@dataclass
class _Checker:
    data: Mapping[str, object]
    messages: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def text(self, name: str, limit: int, *, multiline: bool = False) -> str:
        value = self.data.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.errors[name] = self.messages["not_text"]
            return ""
        value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
        # Single-line fields end up in email subjects and headers: no line breaks there.
        value = value.strip() if multiline else " ".join(value.split())
        if len(value) > limit:
            self.errors[name] = self.messages["too_long"].format(max=limit)
        return value


def validate_submission(
    data: Mapping[str, object],
    catalog: CatalogSnapshot,
    *,
    region: str,
    language: str,
    portal_only: bool,
) -> Submission:
    """Check the customer fields; raise ``ValidationFailed`` naming every bad field.

    ``portal_only`` limits categories to those offered on the web portal (the form); the
    API may use any category in use.
    """
    msgs = MESSAGES[language]
    check = _Checker(data, msgs)
    name = check.text("name", MAX_NAME)
    email_in = check.text("email", 320)
    phone_in = check.text("phone", MAX_PHONE_INPUT)
    subject = check.text("subject", MAX_SUBJECT)
    text = check.text("description", MAX_DESCRIPTION, multiline=True)
    category_in = check.text("category", 200)
    subreason_in = check.text("subreason", 300)
    errors = check.errors

    email: str | None = None
    if email_in and "email" not in errors:
        try:
            # Lower-cased whole: identities are matched on the exact string.
            email = validate_email(email_in, check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            errors["email"] = msgs["bad_email"].format(detail=exc)
    phone: str | None = None
    if phone_in and "phone" not in errors:
        phone = normalize_phone(phone_in, region)
        if phone is None:
            errors["phone"] = msgs["bad_phone"]
    if not email_in and not phone_in:
        errors["email"] = errors["phone"] = msgs["contact_required"]
    if not text and "description" not in errors:
        errors["description"] = msgs["description_required"]

    category: str | None = None
    subreason: str | None = None
    if category_in and "category" not in errors:
        found = catalog.find("categories", category_in)
        if found is None or not found.in_use or (portal_only and not found.available_web_portal):
            errors["category"] = msgs["unknown_category"]
        else:
            category = found.name
            if subreason_in:
                known = {s.casefold(): s for s in found.subreasons}
                subreason = known.get(subreason_in.casefold())
                if subreason is None:
                    errors["subreason"] = msgs["subreason_not_of_category"]
    elif subreason_in and "category" not in errors:
        errors["subreason"] = msgs["subreason_without_category"]

    if errors:
        raise ValidationFailed(errors, language)
    return Submission(
        name=name,
        email=email,
        phone=phone,
        subject=subject or derive_subject(text),
        text=text,
        category=category,
        subreason=subreason,
        language=language,
    )


def unknown_fields(
    data: Mapping[str, object], known: Collection[str], language: str, *, prefix: str = ""
) -> dict[str, str]:
    """An error for each key of ``data`` that is not in ``known``, named ``prefix + key``.

    Optional fields are the reason: a misspelt one ("categroy") would otherwise be dropped
    without a word and the case created without it. Each error lists the known fields
    and, when one is spelt much alike, suggests it.
    """
    msgs = MESSAGES[language]
    listed = ", ".join(prefix + name for name in sorted(known))
    errors: dict[str, str] = {}
    for key in data:
        if key in known:
            continue
        if len(errors) == MAX_UNKNOWN_NAMED:
            break
        close = difflib.get_close_matches(key, known, n=1) if len(key) <= 64 else []
        if close:
            errors[prefix + key] = msgs["unknown_field_hint"].format(
                hint=prefix + close[0], known=listed
            )
        else:
            errors[prefix + key] = msgs["unknown_field"].format(known=listed)
    return errors


def normalize_phone(value: str, region: str) -> str | None:
    """E.164 form of a phone number written with or without the country code."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def derive_subject(text: str) -> str:
    """The description's first line, cut at a word boundary."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= DERIVED_SUBJECT:
        return first
    cut = first[:DERIVED_SUBJECT].rsplit(" ", 1)[0] or first[:DERIVED_SUBJECT]
    return cut.rstrip(" ,.;:") + "…"


# --- HTTP edge helpers ------------------------------------------------------------------


def _weighted(header: str) -> list[tuple[str, float]]:
    """``a;q=0.5, b`` → [("a", 0.5), ("b", 1.0)], in header order (RFC 9110 §12.4.2)."""
    items: list[tuple[str, float]] = []
    for part in header.split(","):
        token, *params = part.split(";")
        token = token.strip().lower()
        if not token:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also false for NaN
                    q = 0.0
        items.append((token, q))
    return items


def negotiate_language(header: str | None, default: str) -> str:
    """The supported language the client ranks highest (q=0 means "not this one")."""
    best, best_q = default, 0.0
    for token, q in _weighted(header or ""):
        lang = default if token == "*" else token.split("-", 1)[0]
        if lang in LANGUAGES and q > best_q:  # strictly greater: earlier wins ties
            best, best_q = lang, q
    return best


def _media_q(ranges: list[tuple[str, float]], media: str) -> float:
    """q of ``media`` under the most specific matching range, 0 when none matches."""
    kind = media.split("/", 1)[0]
    best_q, best_rank = 0.0, -1
    for token, q in ranges:
        rank = 2 if token == media else 1 if token == f"{kind}/*" else 0 if token == "*/*" else -1
        if rank > best_rank:
            best_q, best_rank = q, rank
    return best_q


def prefers_json(accept: str | None) -> bool:
    """True when the client ranks JSON above HTML (``*/*`` alone means a browser page)."""
    ranges = _weighted(accept or "")
    return _media_q(ranges, "application/json") > _media_q(ranges, "text/html")


def language_field(value: object) -> str | None:
    """A supported language named in a body field ("en", "es-AR"), else None."""
    if not isinstance(value, str):
        return None
    lang = value.strip().lower().split("-", 1)[0]
    return lang if lang in LANGUAGES else None


def too_large(message: str) -> Rejected:
    return Rejected(413, "payload_too_large", message, "too_large")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 past ``limit`` or the app's ``client_max_size``."""
    too_big = too_large(f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_big from None
    if len(body) > limit:
        raise too_big
    return body


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        message = f"the body is not valid JSON: {exc}"
        raise Rejected(400, "malformed_json", message, "malformed") from None
    if not isinstance(data, dict):
        raise Rejected(400, "malformed_json", "the body must be a JSON object", "malformed")
    return data


def unsupported_media(accepted: str) -> Rejected:
    return Rejected(
        415, "unsupported_media_type", f"Content-Type must be {accepted}", "unsupported_media"
    )
