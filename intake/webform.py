"""The public web form: ``GET /form``, ``POST /form`` and the ``GET /form/thanks`` page.

A post arrives urlencoded or multipart from a browser, or as JSON from a script; it is
rate-limited per client, checked (CSRF for browser posts, honeypot, shared validation in
``intake.forms``), its files are stored, and only then is it handed to ``accept``. Browsers
get HTML (the form again with per-field messages, or a 303 to the confirmation page);
JSON clients get JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from aiohttp import BodyPartReader, web
from yarl import URL

from intake.accept import IntakeWriter
from intake.attachments import AttachmentStore
from intake.csrf import CsrfTokens
from intake.forms import (
    FIELDS_MAX_BYTES,
    MESSAGES,
    Rejected,
    ValidationFailed,
    error_response,
    language_field,
    negotiate_language,
    parse_json_object,
    prefers_json,
    read_body,
    too_large,
    unsupported_media,
    validate_submission,
)
from intake.message import AcceptResult, Attachment, Channel
from intake.metrics import IntakeMetrics
from intake.ratelimit import RateLimiter, client_key
from routing.catalog import CatalogCache

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
FORM_FIELDS = ("name", "email", "phone", "category", "subreason", "subject", "description")
MAX_PARTS = 100  # form fields plus files: far more than the form has, few enough to be cheap
CHUNK = 64 * 1024
# Shape of a case number in the confirmation link (prefix and width are configurable).
CASE_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
PAGE_HEADERS = {
    "Cache-Control": "no-store",  # pages carry a CSRF token and the customer's own data
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
RECEIVED = {
    "es": "Recibimos su mensaje; lo procesaremos a la brevedad.",
    "en": "Your message was received and will be processed shortly.",
}


@dataclass(frozen=True, slots=True)
class WebFormConfig:
    secret_key: bytes
    rate_limit_per_minute: int
    rate_limit_burst: int
    trust_forwarded_for: bool
    max_attachment_bytes: int
    max_attachments: int
    max_total_attachment_bytes: int
    default_language: str
    default_region: str


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Posted:
    """A post as read: its fields, the raw bytes to keep (None for multipart), its files."""

    fields: dict[str, object]
    raw: bytes | None
    is_json: bool
    uploads: list[Upload] = field(default_factory=list)


class WebFormIntake:
    def __init__(
        self,
        writer: IntakeWriter,
        catalog: CatalogCache,
        attachments: AttachmentStore,
        metrics: IntakeMetrics,
        config: WebFormConfig,
    ) -> None:
        self.writer = writer
        self.catalog = catalog
        self.store = attachments
        self.metrics = metrics
        self.config = config
        self.csrf = CsrfTokens(config.secret_key)
        self.limiter = RateLimiter(config.rate_limit_per_minute, config.rate_limit_burst)
        self.pages = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
            autoescape=True,  # every value shown comes from the customer or the catalog
            undefined=jinja2.StrictUndefined,
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/form", self.show_form),
            web.post("/form", self.submit),
            web.get("/form/thanks", self.thanks),
        ]

    # --- pages -------------------------------------------------------------------------

    async def show_form(self, request: web.Request) -> web.Response:
        return self._form_page(self._page_language(request), {}, {}, str(uuid.uuid4()))

    async def thanks(self, request: web.Request) -> web.Response:
        case = request.query.get("case", "")
        number = case if CASE_NUMBER.fullmatch(case) else None
        lang = self._page_language(request)
        return self._page("thanks.html", 200, lang=lang, case_number=number)

    def _page_language(self, request: web.Request) -> str:
        return language_field(request.query.get("lang")) or self._negotiated(request)

    def _negotiated(self, request: web.Request) -> str:
        header = request.headers.get("Accept-Language")
        return negotiate_language(header, self.config.default_language)

    def _page(self, template: str, status: int, **context: Any) -> web.Response:
        html = self.pages.get_template(template).render(**context)
        return web.Response(
            text=html, status=status, content_type="text/html", headers=PAGE_HEADERS
        )

    def _form_page(
        self,
        lang: str,
        fields: dict[str, object],
        errors: dict[str, str],
        submission_id: str,
        *,
        status: int = 200,
        notice: str | None = None,
    ) -> web.Response:
        cfg = self.config
        return self._page(
            "form.html",
            status,
            lang=lang,
            values={k: v for k in FORM_FIELDS if isinstance(v := fields.get(k), str)},
            errors=errors,
            notice=notice,
            categories=self.catalog.current.portal_categories(),
            csrf_token=self.csrf.issue(),
            submission_id=submission_id,
            max_attachments=cfg.max_attachments,
            max_attachment_mb=max(1, cfg.max_attachment_bytes // (1024 * 1024)),
        )

    # --- submission --------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.StreamResponse:
        json_client = request.content_type == "application/json" or prefers_json(
            request.headers.get("Accept")
        )
        try:
            self._check_rate(request)
            posted = await self._read(request)
        except Rejected as exc:
            self.metrics.rejected.labels("web", exc.reason).inc()
            return exc.response()
        fields = posted.fields
        lang = language_field(fields.get("language")) or self._negotiated(request)
        given_id = fields.get("submission_id")
        submission_id = _submission_id(given_id) or str(uuid.uuid4())

        # JSON needs no token: a browser cannot send a cross-origin application/json post
        # without a CORS preflight, which this server never grants (and text/plain, the
        # one other type a plain cross-site form can send, gets 415).
        if not posted.is_json and not self.csrf.verify(fields.get("csrf_token")):
            self.metrics.rejected.labels("web", "csrf").inc()
            if json_client:
                return error_response(403, "csrf_failed", "the form expired; load it again")
            return self._form_page(lang, fields, {}, submission_id, status=403, notice="expired")
        if isinstance(website := fields.get("website"), str) and website.strip():
            # Only bots fill the hidden field: answer as if accepted, keep nothing.
            self.metrics.rejected.labels("web", "honeypot").inc()
            if json_client:
                return web.json_response({"status": "received"}, status=202)
            raise web.HTTPSeeOther(self._thanks_url(request, lang, None))

        errors: dict[str, str] = {}
        try:
            submission = validate_submission(
                fields,
                self.catalog.current,
                region=self.config.default_region,
                language=lang,
                portal_only=True,
            )
        except ValidationFailed as exc:
            errors = exc.fields
        if given_id not in (None, "") and _submission_id(given_id) is None and posted.is_json:
            errors["submission_id"] = MESSAGES[lang]["bad_id"]
        if errors:
            self.metrics.rejected.labels("web", "validation").inc()
            if json_client:
                return ValidationFailed(errors, lang).response()
            notice = "reattach" if posted.uploads else None
            return self._form_page(lang, fields, errors, submission_id, status=422, notice=notice)

        # Files first: a committed row must never point at a file that is not there.
        stored = tuple(
            [await self.store.save(u.data, u.filename, u.content_type) for u in posted.uploads]
        )
        raw = posted.raw if posted.raw is not None else _multipart_raw(fields, stored)
        message = submission.message(Channel.WEB, f"web:{submission_id}", raw, stored)
        result = await self.writer.accept(message)  # StorageUnavailable → 503 (middleware)
        return self._answer(request, result, json_client, lang)

    def _answer(
        self, request: web.Request, result: AcceptResult, json_client: bool, lang: str
    ) -> web.Response:
        if json_client:
            if result.outcome == "failed":  # kept as a failed row, replayed after a fix
                body: dict[str, object] = {"status": "failed", "message": RECEIVED[lang]}
                return web.json_response(body, status=202)
            case = {"number": result.case_number} if result.case_number else None
            status = 200 if result.outcome == "duplicate" else 201
            return web.json_response({"case": case, "status": result.outcome}, status=status)
        raise web.HTTPSeeOther(self._thanks_url(request, lang, result.case_number))

    def _thanks_url(self, request: web.Request, lang: str, number: str | None) -> str:
        query: dict[str, str] = {}
        if number:
            query["case"] = number
        if lang != self._negotiated(request):  # the language the customer picked on the form
            query["lang"] = lang
        return str(URL("/form/thanks").with_query(query))

    def _check_rate(self, request: web.Request) -> None:
        if not self.limiter.enabled:
            return  # no address to parse when there is no limit
        wait = self.limiter.take(client_key(request, self.config.trust_forwarded_for))
        if wait:
            raise Rejected(
                429,
                "rate_limited",
                f"too many submissions from this address; retry in {wait} s",
                "rate_limited",
                headers={"Retry-After": str(wait)},
            )

    # --- reading the body --------------------------------------------------------------

    async def _read(self, request: web.Request) -> Posted:
        ctype = request.content_type
        if ctype == "application/json":
            body = await read_body(request, FIELDS_MAX_BYTES)
            return Posted(dict(parse_json_object(body)), body, is_json=True)
        if ctype == "application/x-www-form-urlencoded":
            body = await read_body(request, FIELDS_MAX_BYTES)
            return Posted(_parse_urlencoded(body, request.charset), body, is_json=False)
        if ctype == "multipart/form-data":
            return await self._read_multipart(request)
        raise unsupported_media(
            "application/x-www-form-urlencoded, multipart/form-data or application/json"
        )

    async def _read_multipart(self, request: web.Request) -> Posted:
        """Stream the parts, holding at most the configured limits in memory.

        ``client_max_size`` does not apply to a streamed multipart body, so every part is
        read with its own cap and the totals are checked as they grow.
        """
        cfg = self.config
        if (request.content_length or 0) > cfg.max_total_attachment_bytes + FIELDS_MAX_BYTES:
            raise too_large("the request body is larger than the attachment limits allow")
        posted = Posted({}, None, is_json=False)
        text_bytes = file_bytes = parts = 0
        fields_too_big = too_large(f"form fields may total at most {FIELDS_MAX_BYTES} bytes")
        file_too_big = too_large(f"each attachment may be at most {cfg.max_attachment_bytes} bytes")
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                parts += 1
                if parts > MAX_PARTS:
                    raise too_large(f"more than {MAX_PARTS} parts in the form")
                if not isinstance(part, BodyPartReader):
                    raise _malformed("nested multipart bodies are not accepted")
                if part.filename is None:
                    data = await _read_part(part, FIELDS_MAX_BYTES - text_bytes, fields_too_big)
                    text_bytes += len(data)
                    text = data.decode(part.get_charset("utf-8"))
                    posted.fields.setdefault(part.name or "", text)  # the first one counts
                    continue
                if part.name != "attachments":
                    raise _malformed("files are accepted only under the field 'attachments'")
                data = await _read_part(part, cfg.max_attachment_bytes, file_too_big)
                if not data and not part.filename:
                    continue  # a file input left empty still sends an empty part
                if len(posted.uploads) >= cfg.max_attachments:
                    raise too_large(f"at most {cfg.max_attachments} attachments are accepted")
                file_bytes += len(data)
                if file_bytes > cfg.max_total_attachment_bytes:
                    raise too_large(
                        f"attachments may total at most {cfg.max_total_attachment_bytes} bytes"
                    )
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                posted.uploads.append(Upload(part.filename, content_type, data))
        except (ValueError, LookupError, AssertionError) as exc:  # incl. UnicodeDecodeError
            raise _malformed(f"the multipart body could not be read: {exc}") from None
        return posted


async def _read_part(part: BodyPartReader, cap: int, too_big: Rejected) -> bytes:
    # Raw bytes on purpose: RFC 7578 §4.7 deprecates Content-Transfer-Encoding in
    # form-data, and decoding a compressed part could expand far beyond the cap.
    buf = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        buf += chunk
        if len(buf) > cap:
            raise too_big
    return bytes(buf)


def _malformed(message: str) -> Rejected:
    return Rejected(400, "malformed_form", message, "malformed")


def _parse_urlencoded(body: bytes, charset: str | None) -> dict[str, object]:
    try:
        pairs = parse_qsl(
            body.decode(charset or "utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_PARTS,
            encoding=charset or "utf-8",
            errors="strict",
        )
    except (ValueError, LookupError) as exc:
        raise _malformed(f"the form body could not be read: {exc}") from None
    fields: dict[str, object] = {}
    for key, value in pairs:
        fields.setdefault(key, value)  # a repeated field: the first one counts
    return fields


def _submission_id(value: object) -> str | None:
    """The canonical form of a UUID, else None (anything else could collide)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _multipart_raw(fields: dict[str, object], stored: tuple[Attachment, ...]) -> bytes:
    """What a multipart post is kept as: its fields and its files' metadata (the files
    themselves are in the attachment store)."""
    document = {
        "fields": {k: v for k, v in fields.items() if k != "csrf_token"},
        "attachments": [
            {"filename": a.filename, "type": a.content_type, "size": a.size, "sha256": a.sha256}
            for a in stored
        ],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")
