"""The public web form: ``GET /form``, ``POST /form`` and the ``GET /form/thanks`` page.

A post arrives urlencoded or multipart from a browser, or as JSON from a script; it is
rate-limited per client, read within its limits (``intake.form_body``), checked (CSRF for
browser posts, honeypot, unknown JSON keys, shared validation in ``intake.forms``), its
files are stored, and only then is it handed to ``accept``. A browser always gets HTML:
the form again with the customer's input and the reason in their language (a field to fix,
a file too large, too many posts, the service down), or a 303 to the confirmation page,
which shows the case number only to the browser it was issued to (``intake.receipts``).
JSON clients get JSON.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from yarl import URL

from intake.accept import IntakeWriter
from intake.attachments import AttachmentStore
from intake.csrf import CsrfTokens
from intake.form_body import BodyLimits, FormBodyReader, Notice, Posted, PostRefused
from intake.forms import (
    MESSAGES,
    Rejected,
    ValidationFailed,
    error_response,
    language_field,
    negotiate_language,
    prefers_json,
    unknown_fields,
    validate_submission,
)
from intake.message import AcceptResult, Attachment, Channel
from intake.metrics import IntakeMetrics
from intake.ratelimit import RateLimiter, client_key
from intake.receipts import COOKIE, COOKIE_PATH, MAX_AGE_SECONDS, Receipts
from routing.catalog import CatalogCache
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
FORM_FIELDS = ("name", "email", "phone", "category", "subreason", "subject", "description")
# Every key a JSON post may carry: the form's fields and its hidden inputs (a script may
# post what it read off the page). Any other key is refused by name, not ignored.
JSON_FIELDS = frozenset({*FORM_FIELDS, "language", "submission_id", "csrf_token", "website"})
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
EXPIRED = Notice("expired")
UNAVAILABLE = Notice("unavailable")
UNAVAILABLE_RETRY_AFTER = "5"  # seconds, as the JSON answer for the same outage says


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
        self.receipts = Receipts(config.secret_key)
        self.limiter = RateLimiter(config.rate_limit_per_minute, config.rate_limit_burst)
        self.body = FormBodyReader(
            BodyLimits(
                max_attachment_bytes=config.max_attachment_bytes,
                max_attachments=config.max_attachments,
                max_total_attachment_bytes=config.max_total_attachment_bytes,
            )
        )
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
        # The link only says which of this browser's receipts to show: a number comes
        # from a receipt the server signed, never from the link itself.
        case = request.query.get("case", "")
        held = bool(case) and self.receipts.holds(request.cookies.get(COOKIE), case)
        lang = self._page_language(request)
        return self._page("thanks.html", 200, lang=lang, case_number=case if held else None)

    def _page_language(self, request: web.Request) -> str:
        return language_field(request.query.get("lang")) or self._negotiated(request)

    def _negotiated(self, request: web.Request) -> str:
        header = request.headers.get("Accept-Language")
        return negotiate_language(header, self.config.default_language)

    def _page(
        self,
        template: str,
        status: int,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> web.Response:
        html = self.pages.get_template(template).render(**context)
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            headers={**PAGE_HEADERS, **(headers or {})},
        )

    def _form_page(
        self,
        lang: str,
        fields: dict[str, object],
        errors: dict[str, str],
        submission_id: str,
        *,
        status: int = 200,
        alert: Notice | None = None,
        reattach: bool = False,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """The form, filled with ``fields``; ``alert`` says why it came back, ``reattach``
        asks for the files again (a browser cannot be handed them back)."""
        cfg = self.config
        return self._page(
            "form.html",
            status,
            headers,
            lang=lang,
            values={k: v for k in FORM_FIELDS if isinstance(v := fields.get(k), str)},
            errors=errors,
            alert=alert,
            reattach=reattach,
            categories=self.catalog.current.portal_categories(),
            csrf_token=self.csrf.issue(),
            submission_id=submission_id,
            max_attachments=cfg.max_attachments,
            max_attachment_mb=max(1, cfg.max_attachment_bytes // (1024 * 1024)),
        )

    def _refused_page(self, request: web.Request, refused: PostRefused) -> web.Response:
        fields = refused.fields
        lang = language_field(fields.get("language")) or self._negotiated(request)
        submission_id = _submission_id(fields.get("submission_id")) or str(uuid.uuid4())
        return self._form_page(
            lang,
            fields,
            {},
            submission_id,
            status=refused.rejected.status,
            alert=refused.notice,
            reattach=refused.had_files,
            headers=refused.rejected.headers,
        )

    # --- submission --------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.StreamResponse:
        json_client = request.content_type == "application/json" or prefers_json(
            request.headers.get("Accept")
        )
        try:
            posted = await self._read(request, json_client)
        except PostRefused as exc:
            self.metrics.rejected.labels("web", exc.rejected.reason).inc()
            if json_client:
                return exc.rejected.response()
            return self._refused_page(request, exc)
        fields = posted.fields
        lang = language_field(fields.get("language")) or self._negotiated(request)
        given_id = fields.get("submission_id")
        submission_id = _submission_id(given_id) or str(uuid.uuid4())
        reattach = bool(posted.uploads)

        # JSON needs no token: a browser cannot send a cross-origin application/json post
        # without a CORS preflight, which this server never grants (and text/plain, the
        # one other type a plain cross-site form can send, gets 415).
        if not posted.is_json and not self.csrf.verify(fields.get("csrf_token")):
            self.metrics.rejected.labels("web", "csrf").inc()
            if json_client:
                return error_response(403, "csrf_failed", "the form expired; load it again")
            return self._form_page(
                lang, fields, {}, submission_id, status=403, alert=EXPIRED, reattach=reattach
            )
        if isinstance(website := fields.get("website"), str) and website.strip():
            # Only bots fill the hidden field: answer as if accepted, keep nothing.
            self.metrics.rejected.labels("web", "honeypot").inc()
            if json_client:
                return web.json_response({"status": "received"}, status=202)
            return _see_other(self._thanks_url(request, lang, None))

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
        if posted.is_json:
            if given_id not in (None, "") and _submission_id(given_id) is None:
                errors["submission_id"] = MESSAGES[lang]["bad_id"]
            unknown = unknown_fields(fields, JSON_FIELDS, lang)
            if "attachments" in unknown:  # a likely mistake deserves its own words
                unknown["attachments"] = MESSAGES[lang]["files_need_multipart"]
            errors.update(unknown)
        if errors:
            self.metrics.rejected.labels("web", "validation").inc()
            if json_client:
                return ValidationFailed(errors, lang).response()
            return self._form_page(
                lang, fields, errors, submission_id, status=422, reattach=reattach
            )

        # Files first: a committed row must never point at a file that is not there.
        stored = tuple(
            [await self.store.save(u.data, u.filename, u.content_type) for u in posted.uploads]
        )
        raw = posted.raw if posted.raw is not None else _multipart_raw(fields, stored)
        message = submission.message(Channel.WEB, f"web:{submission_id}", raw, stored)
        try:
            result = await self.writer.accept(message)
        except StorageUnavailable as exc:
            if json_client:
                raise  # the JSON 503 with Retry-After (config.http's middleware)
            log.warning("storage unavailable for a web form post: %s", exc)
            # The same submission id: sent again, it is deduplicated like any repeat.
            retry = {"Retry-After": UNAVAILABLE_RETRY_AFTER}
            return self._form_page(
                lang,
                fields,
                {},
                submission_id,
                status=503,
                alert=UNAVAILABLE,
                reattach=reattach,
                headers=retry,
            )
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
        response = _see_other(self._thanks_url(request, lang, result.case_number))
        if result.case_number:
            # The receipt that lets the confirmation page show this number to this browser.
            receipt = self.receipts.add(request.cookies.get(COOKIE), result.case_number)
            response.set_cookie(
                COOKIE,
                receipt,
                max_age=MAX_AGE_SECONDS,
                path=COOKIE_PATH,
                secure=request.secure,
                httponly=True,
                samesite="Lax",
            )
        return response

    def _thanks_url(self, request: web.Request, lang: str, number: str | None) -> str:
        query: dict[str, str] = {}
        if number:
            query["case"] = number
        if lang != self._negotiated(request):  # the language the customer picked on the form
            query["lang"] = lang
        return str(URL("/form/thanks").with_query(query))

    async def _read(self, request: web.Request, json_client: bool) -> Posted:
        if self.limiter.enabled:  # no address to parse when there is no limit
            wait = self.limiter.take(client_key(request, self.config.trust_forwarded_for))
            if wait:
                refused = PostRefused(
                    Rejected(
                        429,
                        "rate_limited",
                        f"too many submissions from this address; retry in {wait} s",
                        "rate_limited",
                        headers={"Retry-After": str(wait)},
                    ),
                    Notice("rate_limited", str(wait)),
                )
                if json_client:
                    raise refused
                # Read only what the form page shows again: the text fields, not the files.
                raise refused.keep(await self.body.read_fields(request))
        return await self.body.read(request, keep_fields=not json_client)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


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
