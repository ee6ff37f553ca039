"""The OpenAPI description of the routes served outside the ops API: health, metrics, the
customer web form and the JSON intake. Their handlers live in ``config.http`` and
``intake``; these entries only describe them (``handler`` None), so the one document
covers every route the daemon serves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from console.endpoints import Answer, Endpoint, Param, query
from console.schemas import ErrorBody

HTML = {"type": "string"}


class Sender(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class IntakeIn(BaseModel):
    """A customer message handed in by another system."""

    model_config = ConfigDict(extra="forbid")
    external_id: str | None = Field(None, description="your id: a repeat is one message")
    sender: Sender | None = None
    subject: str | None = None
    text: str | None = None
    category: str | None = None
    subreason: str | None = None
    language: str | None = None


class FormIn(BaseModel):
    """The web form's fields (also accepted as JSON)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    category: str | None = None
    subreason: str | None = None
    subject: str | None = None
    description: str | None = None
    language: str | None = None
    submission_id: str | None = None
    csrf_token: str | None = None
    website: str | None = Field(None, description="leave empty (a trap for robots)")


class CaseNumber(BaseModel):
    number: str


class Accepted(BaseModel):
    case: CaseNumber | None
    status: str


class Received(BaseModel):
    status: str
    message: str | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, Any]


def _html_or_json(description: str) -> Answer:
    return Answer(description, ErrorBody)


def endpoints() -> list[Endpoint]:
    form_answers = {
        201: Answer("JSON clients: the case", Accepted),
        202: Answer("JSON clients: received, to be processed after a fix", Received),
        303: Answer("browsers: see the thanks page", headers=("Location",)),
    }
    return [
        Endpoint(
            "GET", "/healthz", None, "The process is alive", "health",
            {200: Answer("alive", Health)}, None,
        ),
        Endpoint(
            "GET", "/readyz", None, "Database reachable and every enabled part running",
            "health", {200: Answer("ready", Readiness), 503: Answer("not ready", Readiness)},
            None,
        ),
        Endpoint(
            "GET", "/metrics", None, "Prometheus metrics", "health",
            {200: Answer("metrics", media="text/plain", schema={"type": "string"})}, None,
        ),
        Endpoint(
            "GET", "/form", None, "The customer web form", "intake",
            {200: Answer("the form", media="text/html", schema=HTML)}, None,
            params=(query("lang", "es or en"),),
        ),
        Endpoint(
            "POST", "/form", None, "Submit the web form (urlencoded, multipart or JSON)",
            "intake", form_answers, None, body=FormIn, body_required=False,
            errors=(403, 429), error_media=("application/json", "text/html"),
            extra={"description": "Browsers get HTML pages (the form again with the "
                   "reason) for every refusal; JSON clients get the JSON error."},
        ),
        Endpoint(
            "GET", "/form/thanks", None, "The thanks page (shows a number this browser "
            "just created)", "intake",
            {200: Answer("the page", media="text/html", schema=HTML)}, None,
            params=(query("case", "the case number just created"), query("lang", "es or en")),
        ),
        Endpoint(
            "POST", "/api/v1/intake", None, "Hand in a customer message (role intake)",
            "intake",
            {
                200: Answer("a repeat of a message already taken", Accepted),
                201: Answer("the case created or continued", Accepted),
                202: Answer("received; kept as failed, processed after a fix", Received),
            },
            ("intake",), body=IntakeIn,
            params=(Param("Idempotency-Key", "header", {"type": "string"},
                          "a repeat with the same key is one message"),),
        ),
    ]  # fmt: skip
