"""JSON shapes of cases, timelines and inbound rows, shared by the ops API and the CLI.

One place decides field names and formats (ISO 8601 datetimes), so ``ventanilla cases show
--json`` prints exactly what ``GET /api/v1/cases/{number}`` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from storage.queries import (
    CaseDetail,
    CaseRow,
    InboundRow,
    Page,
    TimelineEntry,
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
    return {
        "type": "event",
        "id": entry.id,
        "kind": entry.kind,
        "detail": entry.detail,
        "actor": entry.actor,
        "created_at": iso(entry.created_at),
    }


def case_detail(case: CaseDetail) -> dict[str, Any]:
    body = case_item(case.row)
    body["customer"]["identities"] = [{"kind": i.kind, "value": i.value} for i in case.identities]
    body.update(
        {
            "description": case.description,
            "status_kind": case.status_kind,
            "language": case.language,
            "tags": case.tags,
            "cc": case.cc,
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
            "timeline": [timeline_entry(e) for e in case.timeline],
        }
    )
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


def page(result: Page[T], item: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """The shape of every list answer (DESIGN §3)."""
    return {"items": [item(i) for i in result.items], "next_cursor": result.next_cursor}
