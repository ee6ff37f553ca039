"""The outbound log as CSV: the columns and the cells of one row, shared by the API's
export and ``ventanilla log list --csv`` so that both write the same file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from console.log_schemas import log_item
from storage.log_queries import LogItem

CSV_COLUMNS = (
    "id", "created_at", "sent_at", "channel", "recipient", "customer_id", "customer",
    "case", "subject", "status", "status_reason", "attempts", "trigger", "template",
    "provider", "requested_by", "reason", "resend_of",
)  # fmt: skip


def csv_row(item: LogItem) -> list[Any]:
    row = log_item(item)
    customer = row.pop("customer") or {}
    row["customer_id"] = customer.get("id")
    row["customer"] = customer.get("name")
    return [_cell(row.get(column)) for column in CSV_COLUMNS]


def _cell(value: Any) -> Any:
    # A cell a spreadsheet would read as a formula (CSV injection); a phone number's "+"
    # followed by digits is left alone.
    phone = isinstance(value, str) and value[:1] == "+" and value[1:].isdigit()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not phone:
        return "'" + value
    return "" if value is None else value


def csv_lines(rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")
