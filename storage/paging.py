"""Keyset pagination and the small helpers every read query shares.

Every list is keyset-paginated, newest first: a cursor stands for the last row seen, so
pages stay stable while new rows arrive (an OFFSET would shift under inserts). Results are
plain frozen dataclasses built from rows whose column labels are their field names.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.engine import Connection

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR_TAG = "v1"  # lets the cursor format change without misreading old ones

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    # SQLAlchemy 2.1 types Select by its columns (variadic); 2.0 cannot subscript it so.
    AnySelect = Select[*tuple[Any, ...]]


class QueryError(ValueError):
    """A bad filter, limit or cursor; ``param`` names the offending parameter."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    raw = f"{_CURSOR_TAG}:{last_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The last id a cursor stands for; QueryError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    tag, _, last = text.partition(":")
    if tag != _CURSOR_TAG or not last.isdigit():
        raise QueryError("cursor", "cursor is not valid; use next_cursor as given")
    return int(last)


def keyset_page(
    conn: Connection, stmt: AnySelect, id_col: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Run ``stmt`` newest first from ``cursor``; one extra row tells whether more exist."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    if cursor:
        stmt = stmt.where(id_col < decode_cursor(cursor))
    rows = list((conn.execute(stmt.order_by(id_col.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    return rows[:limit], (encode_cursor(rows[limit - 1].id) if more else None)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (``\\`` is the escape)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def columns_of(model: Any, cls: type[Any], *skip: str) -> list[Any]:
    """The model's columns named like the result dataclass's fields (but ``skip``)."""
    return [getattr(model, f.name) for f in fields(cls) if f.name not in skip]


def from_row(cls: type[D], source: Any, /, **given: Any) -> D:
    """A result dataclass from a row whose column labels are its field names."""
    values: dict[str, Any] = {
        f.name: source._mapping[f.name] for f in fields(cls) if f.name not in given
    }
    values.update(given)
    return cls(**values)
