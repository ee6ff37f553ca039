"""JSON shapes of cases, timelines and inbound rows, shared by the ops API and the CLI.

One place decides field names and formats (ISO 8601 datetimes), so ``ventanilla cases show
--json`` prints exactly what ``GET /api/v1/cases/{number}`` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from cases.operations import CaseChanged
from storage.auth import TokenInfo
from storage.customer_queries import CustomerDetail, CustomerRow, Interaction
from storage.queries import (
    CaseDetail,
    CaseRow,
    InboundRow,
    Page,
    TimelineEntry,
    TimelineEvent,
    TimelineMessage,
)

T = TypeVar("T")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def case_item(row: CaseRow) -> dict[str, Any]:
    return {
        "number": row.number,
        "title": row.title,
        "status": row.status,
        "priority": row.priority,
        "severity": row.severity,
        "category": row.category,
        "subreason": row.subreason,
        "area": row.area,
        "assignee": row.assignee,
        "customer": {"id": row.customer_id, "name": row.customer_name},
        "contact": row.contact,
        "origin_channel": row.origin_channel,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def timeline_entry(entry: TimelineEntry) -> dict[str, Any]:
    if isinstance(entry, TimelineMessage):
        return {
            "type": "message",
            "id": entry.id,
            "direction": entry.direction,
            "channel": entry.channel,
            "sender": entry.sender,
            "subject": entry.subject,
            "text": entry.text,
            "created_at": iso(entry.created_at),
            "attachments": [
                {
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256,
                }
                for a in entry.attachments
            ],
        }
    return {"type": "event", **event_item(entry)}


def case_detail(case: CaseDetail, *, timeline: bool = True) -> dict[str, Any]:
    body = case_item(case.row)
    body["customer"]["identities"] = [{"kind": i.kind, "value": i.value} for i in case.identities]
    body.update(
        {
            "description": case.description,
            "status_kind": case.status_kind,
            "language": case.language,
            "tags": case.tags,
            "cc": case.cc,
            "watchers": case.watchers,
            "is_public": case.is_public,
            "version": case.version,
            "parent": case.parent,
            "children": list(case.children),
            "merged_into": case.merged_into,
            "cloned_from": case.cloned_from,
            "solution": case.solution,
            "first_response_due": iso(case.first_response_due),
            "resolution_due": iso(case.resolution_due),
            "escalation_level": case.escalation_level,
            "reopen_at": iso(case.reopen_at),
            "closed_at": iso(case.closed_at),
        }
    )
    if timeline:
        body["timeline"] = [timeline_entry(e) for e in case.timeline]
    return body


def inbound_item(row: InboundRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "received_at": iso(row.received_at),
        "channel": row.channel,
        "external_id": row.external_id,
        "status": row.status,
        "error": row.error,
        "case": row.case_number,
        "retries": row.retries,
    }


def event_item(event: TimelineEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "detail": event.detail,
        "actor": event.actor,
        "created_at": iso(event.created_at),
    }


def case_change(changed: CaseChanged, event: TimelineEvent | None) -> dict[str, Any]:
    return {
        "case": changed.number,
        "version": changed.version,
        "changes": {k: {"before": b, "after": a} for k, (b, a) in changed.changes.items()},
        "event": event_item(event) if event is not None else None,
        "created": changed.created,
    }


def customer_item(row: CustomerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "identities": [{"kind": i.kind, "value": i.value} for i in row.identities],
        "created_at": iso(row.created_at),
        "open_cases": row.open_cases,
        "cases": row.cases,
    }


def customer_detail(detail: CustomerDetail) -> dict[str, Any]:
    body = customer_item(detail.row)
    body["open"] = [
        {
            "number": c.number,
            "title": c.title,
            "status": c.status,
            "status_kind": c.status_kind,
            "origin_channel": c.origin_channel,
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
        }
        for c in detail.open
    ]
    return body


def interaction(entry: Interaction) -> dict[str, Any]:
    return {
        "type": entry.type,
        "id": entry.id,
        "at": iso(entry.at),
        "case": entry.case,
        "channel": entry.channel,
        "direction": entry.direction if entry.type != "case" else None,
        "subject": entry.subject,
        "text": entry.text,
        "status": entry.status,
    }


def token_item(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "user": info.user,
        "role": info.role,
        "prefix": info.prefix,
        "created_at": iso(info.created_at),
        "revoked_at": iso(info.revoked_at),
    }


def page(result: Page[T], item: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """The shape of every list answer (DESIGN §3)."""
    return {"items": [item(i) for i in result.items], "next_cursor": result.next_cursor}
