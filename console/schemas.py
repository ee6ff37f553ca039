"""Request and response bodies of the ops API, as pydantic models.

Requests are validated with them (unknown fields are refused: a misspelt field must not be
silently ignored); responses are documented by them in ``/api/v1/openapi.json`` and the
handlers' dicts must match (the schemathesis run checks every answer against them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors and pages ---------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: dict[str, str] | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- cases ----------------------------------------------------------------------------------


class CaseChanges(Strict):
    """Fields an agent may change; catalog items by name, ``null`` clears the optional."""

    title: str | None = Field(None, min_length=1, max_length=500)
    status: str | None = Field(None, min_length=1)
    priority: str | None = Field(None, min_length=1)
    severity: str | None = Field(None, min_length=1)
    category: str | None = None
    subreason: str | None = None
    area: str | None = None
    assignee: str | None = None
    tags: list[str] | None = None
    cc: list[str] | None = None
    watchers: list[str] | None = None
    is_public: bool | None = None
    solution: str | None = None
    reopen_at: AwareDatetime | None = None
    parent: str | None = None


class NoteIn(Strict):
    text: str = Field(min_length=1, max_length=100_000)


class FileIn(Strict):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(
        "application/octet-stream", max_length=200, pattern=r"^[\w.+-]+/[\w.+-]+$"
    )
    content: str = Field(description="the file's bytes, base64-encoded")


class ReplyIn(Strict):
    text: str = Field(min_length=1, max_length=100_000)
    channel: Literal["email", "sms", "telegram"] | None = None
    attachments: list[FileIn] = Field(default_factory=list, max_length=20)  # email only


class TechnicianChannel(Strict):
    channel: Literal["email", "sms", "push", "telegram"]
    address: str = Field(min_length=1, max_length=4000)
    provider: str = Field("", max_length=60)  # push: a configured provider's name


class TechnicianChannels(Strict):
    """The whole ordered list: the first is tried first, the rest in turn when it fails."""

    channels: list[TechnicianChannel] = Field(max_length=10)


class MergeIn(Strict):
    into: str = Field(min_length=1, max_length=40)


class IdentityIn(Strict):
    kind: Literal["email", "phone", "telegram"]
    value: str = Field(min_length=1, max_length=320)


class CustomerMergeIn(Strict):
    into: int = Field(ge=1, le=2**62)  # the customer that remains


class CustomerRef(BaseModel):
    id: int
    name: str


class CaseItem(BaseModel):
    number: str
    title: str
    status: str
    priority: str
    severity: str
    category: str | None
    subreason: str | None
    area: str | None
    assignee: str | None
    customer: CustomerRef
    contact: str
    origin_channel: str
    created_at: str
    updated_at: str


class AttachmentOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str


class TimelineEntry(BaseModel):
    """A message (``type`` message: direction, channel, sender, subject, text,
    attachments) or an event (``type`` event: kind, detail, actor)."""

    type: Literal["message", "event"]
    id: int
    created_at: str
    direction: str | None = None
    channel: str | None = None
    sender: str | None = None
    subject: str | None = None
    text: str | None = None
    attachments: list[AttachmentOut] | None = None
    kind: str | None = None
    detail: dict[str, Any] | None = None
    actor: str | None = None


class Identity(BaseModel):
    kind: str
    value: str


class CustomerWithIdentities(CustomerRef):
    identities: list[Identity]


class CaseState(CaseItem):
    """A case's fields without its timeline (the answer to a change)."""

    customer: CustomerWithIdentities
    version: int
    description: str
    status_kind: str
    language: str
    tags: list[Any]
    cc: list[Any]
    watchers: list[Any]
    is_public: bool
    parent: str | None
    children: list[str]
    merged_into: str | None
    cloned_from: str | None
    solution: str
    first_response_due: str | None
    resolution_due: str | None
    escalation_level: int
    reopen_at: str | None
    closed_at: str | None


class CaseDetail(CaseState):
    """A case's fields and its timeline: messages in and out, notes and events."""

    timeline: list[TimelineEntry]


class CasePage(BaseModel):
    items: list[CaseItem]
    next_cursor: str | None


class EventOut(BaseModel):
    id: int
    kind: str
    detail: dict[str, Any]
    actor: str
    created_at: str


class CaseChangeOut(BaseModel):
    """The answer to a case operation: the case (and its new version) and the event."""

    case: str
    version: int
    changes: dict[str, dict[str, Any]]
    event: EventOut | None
    created: str | None = None


# --- customers ------------------------------------------------------------------------------


class CustomerItem(BaseModel):
    id: int
    name: str
    identities: list[Identity]
    created_at: str
    open_cases: int
    cases: int


class CustomerCase(BaseModel):
    number: str
    title: str
    status: str
    status_kind: str
    origin_channel: str
    created_at: str
    updated_at: str


class CustomerDetail(CustomerItem):
    open: list[CustomerCase]


class CustomerPage(BaseModel):
    items: list[CustomerItem]
    next_cursor: str | None


class CustomerTimelineEntry(BaseModel):
    """A case opened, a message from the customer, or one sent to them."""

    type: Literal["case", "message", "notification"]
    id: int
    at: str
    case: str | None
    channel: str | None
    direction: Literal["in", "out"] | None
    subject: str | None
    text: str | None
    status: str | None


class CustomerTimelinePage(BaseModel):
    items: list[CustomerTimelineEntry]
    next_cursor: str | None


# --- tokens ---------------------------------------------------------------------------------


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["admin", "ops", "agent", "intake"]


class TokenItem(BaseModel):
    id: int
    user: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None


class TokenCreated(TokenItem):
    token: str


class TokenPage(BaseModel):
    items: list[TokenItem]
    next_cursor: str | None


# --- the root -------------------------------------------------------------------------------


class Links(BaseModel):
    links: dict[str, str]
