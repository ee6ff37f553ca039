"""Bodies of the outbound log's part of the ops API (notifications, resends, jobs, saved
filters) as pydantic models, and the functions that shape the answers to match them.

The same shapes serve the API, ``ventanilla log … --json`` and the console page.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from console.schemas import Strict
from console.serialize import iso
from storage.log_queries import AttemptRow, ChainLink, JobRow, LogDetail, LogItem, SavedFilterRow

ParamValue = str | int | bool | list[str]

# --- requests ---------------------------------------------------------------------------


class ResendIn(Strict):
    reason: str | None = Field(None, max_length=2000)
    as_sent: bool = False  # the original text rather than rendered again from the case


class BulkResendIn(Strict):
    """Either ``ids`` or ``filter``: a saved filter's name, or the filters themselves."""

    ids: list[int] | None = Field(None, min_length=1, max_length=100_000)
    filter: str | dict[str, ParamValue] | None = None
    reason: str | None = Field(None, max_length=2000)
    as_sent: bool = False

    @model_validator(mode="after")
    def _one_selection(self) -> BulkResendIn:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        return self


class FilterIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    params: dict[str, ParamValue] = Field(default_factory=dict)


class FilterPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    params: dict[str, ParamValue] | None = None


def flat_params(params: dict[str, ParamValue]) -> dict[str, str]:
    """Filter params as the log reads them: lists comma-joined, booleans as words."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = ",".join(value)
        else:
            out[key] = str(value)
    return out


# --- answers ----------------------------------------------------------------------------


class CustomerRef(BaseModel):
    id: int
    name: str | None


class LogItemOut(BaseModel):
    id: int
    channel: str
    recipient: str
    customer: CustomerRef | None
    case: str | None
    subject: str
    status: str
    status_reason: str | None
    attempts: int
    trigger: str
    template: str
    provider: str
    audience: str
    created_at: AwareDatetime
    sent_at: AwareDatetime | None
    next_attempt_at: AwareDatetime | None
    requested_by: str | None
    reason: str | None
    resend_of: int | None


class LogPage(BaseModel):
    items: list[LogItemOut]
    next_cursor: str | None
    count: int | Literal["10,000+"] | None = None


class MessageOut(BaseModel):
    headers: dict[str, Any]
    subject: str
    text: str
    html: str | None
    attachments: list[dict[str, Any]]
    segments: int | None


class AttemptOut(BaseModel):
    id: int
    started_at: AwareDatetime
    duration_ms: int
    outcome: str
    provider: str
    provider_code: str | None
    provider_response: str | None
    provider_message_id: str | None
    error: str | None
    possible_duplicate: bool
    dispatcher: str | None


class ChainOut(BaseModel):
    id: int
    status: str
    trigger: str
    created_at: AwareDatetime
    sent_at: AwareDatetime | None
    requested_by: str | None
    reason: str | None
    resend_of: int | None


class CaseRefOut(BaseModel):
    number: str
    title: str | None


class LogDetailOut(LogItemOut):
    language: str
    message: MessageOut
    message_id: str | None
    provider_id: str | None
    last_error: str | None
    case_ref: CaseRefOut | None
    delivery_attempts: list[AttemptOut]
    chain: list[ChainOut]


class ResentOut(BaseModel):
    original: int
    notification: int | None
    skipped: str | None
    repeated: bool


class JobOut(BaseModel):
    id: int
    status: Literal["running", "done", "cancelled"]
    total: int
    done: int
    queued: int
    skipped: dict[str, int]
    requested_by: str
    reason: str | None
    as_sent: bool
    created_at: AwareDatetime
    updated_at: AwareDatetime
    finished_at: AwareDatetime | None


class JobStartedOut(BaseModel):
    job: JobOut
    repeated: bool


class FilterOut(BaseModel):
    id: int
    name: str
    user: str
    params: dict[str, str]
    created_at: AwareDatetime


class FilterList(BaseModel):
    items: list[FilterOut]
    next_cursor: None = None


def log_item(row: LogItem) -> dict[str, Any]:
    customer = None
    if row.customer_id is not None:
        customer = {"id": row.customer_id, "name": row.customer_name}
    return {
        "id": row.id, "channel": row.channel, "recipient": row.recipient,
        "customer": customer, "case": row.case_number, "subject": row.subject,
        "status": row.status, "status_reason": row.status_reason, "attempts": row.attempts,
        "trigger": row.trigger, "template": row.template, "provider": row.provider,
        "audience": row.audience, "created_at": iso(row.created_at),
        "sent_at": iso(row.sent_at), "next_attempt_at": iso(row.next_attempt_at),
        "requested_by": row.requested_by, "reason": row.reason, "resend_of": row.resend_of,
    }  # fmt: skip


def message_headers(detail: LogDetail) -> dict[str, Any]:
    """The headers the message carries as the log can show them (email)."""
    if detail.item.channel != "email":
        return dict(detail.headers)
    headers: dict[str, Any] = {"To": detail.item.recipient, "Subject": detail.item.subject}
    if detail.message_id:
        headers["Message-ID"] = f"<{detail.message_id}>"
    headers.update(detail.headers)
    return headers


def _plain(row: AttemptRow | ChainLink) -> dict[str, Any]:
    """A result row's fields as JSON values (datetimes in ISO 8601)."""
    return {
        f.name: iso(v) if isinstance(v := getattr(row, f.name), datetime) else v
        for f in fields(row)
    }


def log_detail(detail: LogDetail) -> dict[str, Any]:
    case_ref = None
    if detail.item.case_number is not None:
        case_ref = {"number": detail.item.case_number, "title": detail.case_title}
    return {
        **log_item(detail.item),
        "language": detail.language,
        "message": {
            "headers": message_headers(detail),
            "subject": detail.item.subject,
            "text": detail.body,
            "html": detail.html,
            "attachments": detail.attachments,
            "segments": detail.segments,
        },
        "message_id": detail.message_id,
        "provider_id": detail.provider_id,
        "last_error": detail.last_error,
        "case_ref": case_ref,
        "delivery_attempts": [_plain(a) for a in detail.attempt_log],
        "chain": [_plain(c) for c in detail.chain],
    }


def job(row: JobRow) -> dict[str, Any]:
    return {
        "id": row.id, "status": row.status, "total": row.total, "done": row.done,
        "queued": row.queued, "skipped": {k: int(v) for k, v in row.skipped.items()},
        "requested_by": row.requested_by, "reason": row.reason, "as_sent": row.as_sent,
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
        "finished_at": iso(row.finished_at),
    }  # fmt: skip


def saved_filter(row: SavedFilterRow) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "user": row.user,
        "params": {k: str(v) for k, v in row.params.items()},
        "created_at": iso(row.created_at),
    }  # fmt: skip


def count_value(count: int, cap: int) -> int | str:
    return f"{cap:,}+" if count > cap else count
