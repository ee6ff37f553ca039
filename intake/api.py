"""The authenticated JSON intake endpoint, ``POST /api/v1/intake`` (role ``intake``).

Other systems (a CRM, a chat bot, a shop) hand customer messages in here. The body uses the
API's field names (``text``, ``sender``); validation is the web form's (``intake.forms``),
except that any category in use may be named, not only those offered on the portal. A key
the API does not know is refused by name, not ignored.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from console.principal import principal_of
from intake.accept import IntakeWriter
from intake.forms import (
    FIELDS_MAX_BYTES,
    MESSAGES,
    Rejected,
    ValidationFailed,
    language_field,
    negotiate_language,
    parse_json_object,
    read_body,
    unknown_fields,
    unsupported_media,
    validate_submission,
)
from intake.message import Channel
from intake.metrics import IntakeMetrics
from intake.webform import WebFormConfig
from routing.catalog import CatalogCache

# Printable ASCII without spaces: ids travel in headers and logs.
EXTERNAL_ID = re.compile(r"[!-~]{1,200}")
# Every key the body may carry; any other is refused by name (a misspelt optional field
# would otherwise be dropped silently).
API_FIELDS = frozenset(
    {"external_id", "sender", "subject", "text", "category", "subreason", "language"}
)
SENDER_FIELDS = frozenset({"name", "email", "phone"})
# The API's names for the shared validator's fields, used to name fields in errors.
API_NAMES = {
    "name": "sender.name",
    "email": "sender.email",
    "phone": "sender.phone",
    "description": "text",
}


class ApiIntake:
    def __init__(
        self,
        writer: IntakeWriter,
        catalog: CatalogCache,
        metrics: IntakeMetrics,
        config: WebFormConfig,
    ) -> None:
        self.writer = writer
        self.catalog = catalog
        self.metrics = metrics
        self.config = config

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/v1/intake", self.intake)]

    async def intake(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require("intake")
        lang = negotiate_language(
            request.headers.get("Accept-Language"), self.config.default_language
        )
        try:
            if request.content_type != "application/json":
                raise unsupported_media("application/json")
            body = await read_body(request, FIELDS_MAX_BYTES)
            data = parse_json_object(body)
        except Rejected as exc:
            self.metrics.rejected.labels("api", exc.reason).inc()
            return exc.response()

        errors = unknown_fields(data, API_FIELDS, lang)
        sender = data.get("sender")
        if sender is None:
            sender = {}
        if not isinstance(sender, dict):
            errors["sender"] = MESSAGES[lang]["not_object"]
            sender = {}
        errors.update(unknown_fields(sender, SENDER_FIELDS, lang, prefix="sender."))
        language = lang
        if data.get("language") not in (None, ""):
            chosen = language_field(data.get("language"))
            if chosen is None:
                errors["language"] = MESSAGES[lang]["bad_language"]
            else:
                language = chosen
        fields = {
            "name": sender.get("name"),
            "email": sender.get("email"),
            "phone": sender.get("phone"),
            "subject": data.get("subject"),
            "description": data.get("text"),
            "category": data.get("category"),
            "subreason": data.get("subreason"),
        }
        try:
            submission = validate_submission(
                fields,
                self.catalog.current,
                region=self.config.default_region,
                language=language,
                portal_only=False,
            )
        except ValidationFailed as exc:
            errors.update({API_NAMES.get(k, k): v for k, v in exc.fields.items()})
        key = data.get("external_id")
        header_key = request.headers.get("Idempotency-Key")
        if key in (None, ""):
            key = header_key or None
            where = "Idempotency-Key"
        else:
            where = "external_id"
        if key is not None and not (isinstance(key, str) and EXTERNAL_ID.fullmatch(key)):
            errors[where] = MESSAGES[lang]["bad_id"]
        if errors:
            self.metrics.rejected.labels("api", "validation").inc()
            return ValidationFailed(errors, lang).response()

        # Ids are scoped to the calling account: two integrations that both number their
        # messages from 1 must not have one's message taken for a repeat of the other's.
        external_id = f"{principal.user_id}:{key or uuid.uuid4()}"
        message = submission.message(
            Channel.API, external_id, body, fingerprint=submission.fingerprint()
        )
        result = await self.writer.accept(message)
        if result.outcome == "conflict":  # the key was used for another message
            self.metrics.rejected.labels("api", "id_reused").inc()
            return ValidationFailed({where: MESSAGES[lang]["id_reused"]}, lang).response()
        if result.outcome == "failed":  # kept as a failed row, replayed after a fix
            return web.json_response(
                {"status": "failed", "message": "received; it will be processed after a fix"},
                status=202,
            )
        case = {"number": result.case_number} if result.case_number else None
        status = 200 if result.outcome == "duplicate" else 201
        return web.json_response({"case": case, "status": result.outcome}, status=status)
