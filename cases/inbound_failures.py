"""Failed inbound rows: a message that could not be parsed or stored is still kept.

Its raw bytes (and, when it was parsed, its normalized form) are committed with status
``failed`` and the error, so nothing accepted is lost and ``ventanilla inbound retry``
can replay it after a fix. The same bytes failing twice are one row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from cases.operations import RecordFailedInbound
from intake.message import AcceptResult
from storage.models import Inbound
from storage.operations import Executor, WriteContext

log = logging.getLogger(__name__)


def record_failed_inbound(
    conn: Connection,
    op: RecordFailedInbound,
    now: datetime,
    *,
    normalized: dict[str, Any] | None = None,
    retry_of: int | None = None,
) -> AcceptResult:
    error = op.error[:4000]
    log.error("inbound %s/%s failed: %s", op.channel.value, op.external_id, error)
    if retry_of is not None:
        conn.execute(
            update(Inbound)
            .where(Inbound.id == retry_of)
            .values(error=error, retries=Inbound.retries + 1)
        )
        return AcceptResult("failed", retry_of, None, error)
    existing = conn.scalar(
        select(Inbound.id).where(
            Inbound.channel == op.channel.value, Inbound.external_id == op.external_id
        )
    )
    if existing is not None:
        return AcceptResult("duplicate", existing, None)
    inbound_id = conn.scalar(
        insert(Inbound)
        .values(
            channel=op.channel.value,
            external_id=op.external_id,
            received_at=now,
            status="failed",
            error=error,
            raw=op.raw,
            normalized=normalized,
            retries=0,
        )
        .returning(Inbound.id)
    )
    assert inbound_id is not None
    return AcceptResult("failed", int(inbound_id), None, error)


class FailedInboundRecorder(Executor):
    """Executes ``RecordFailedInbound``."""

    def run(
        self, conn: Connection, ops: Sequence[RecordFailedInbound], ctx: WriteContext
    ) -> list[AcceptResult]:
        return [record_failed_inbound(conn, op, ctx.now) for op in ops]
