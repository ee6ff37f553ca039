"""Saved filters ("Mis filtros"): named selections of the outbound log, each owned by a
user, written through the write path.

A filter's params are the log's own filter parameters, validated and normalized before
they are stored (``storage.log_filters.parse_filters``), so a saved filter always lists
what the same parameters would. Names are unique per user. A user changes and deletes
only their own filters; an admin may touch anyone's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from storage.log_filters import FILTER_PARAMS, parse_filters
from storage.models import SavedFilter
from storage.operations import Executor, OperationRefused, WriteContext
from storage.paging import QueryError

MAX_NAME = 200
MAX_FILTERS_PER_USER = 200


@dataclass(frozen=True, slots=True)
class SaveFilter:
    """Create (``filter_id`` None) or change a saved filter; ``None`` fields stay as they are."""

    user_id: int
    name: str | None
    params: dict[str, Any] | None
    filter_id: int | None = None
    admin: bool = False


@dataclass(frozen=True, slots=True)
class DeleteFilter:
    user_id: int
    filter_id: int
    admin: bool = False


def normalized_params(params: dict[str, Any]) -> dict[str, str]:
    """The params as the log reads them; an unknown key or a bad value is refused."""
    unknown = sorted(set(params) - set(FILTER_PARAMS))
    if unknown:
        raise OperationRefused(
            "invalid", f"unknown filter parameter {unknown[0]!r}", f"params.{unknown[0]}"
        )
    try:
        return parse_filters(params).params()
    except QueryError as exc:
        raise OperationRefused("invalid", str(exc), f"params.{exc.param}") from None


def _name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise OperationRefused("invalid", "a saved filter needs a name", "name")
    if len(name) > MAX_NAME:
        raise OperationRefused("invalid", f"name is at most {MAX_NAME} characters", "name")
    return name


class FilterWriter(Executor):
    """Executor of ``SaveFilter`` and ``DeleteFilter``; answers the filter's id."""

    def run_one(self, conn: Connection, op: SaveFilter | DeleteFilter, ctx: WriteContext) -> int:
        if isinstance(op, DeleteFilter):
            self._owner(conn, op.filter_id, op.user_id, op.admin)
            conn.execute(delete(SavedFilter).where(SavedFilter.id == op.filter_id))
            return op.filter_id
        values: dict[str, Any] = {}
        if op.name is not None:
            values["name"] = _name(op.name)
        if op.params is not None:
            values["params"] = normalized_params(op.params)
        if op.filter_id is None:
            if "name" not in values:
                raise OperationRefused("invalid", "a saved filter needs a name", "name")
            count = len(conn.scalars(
                select(SavedFilter.id).where(SavedFilter.user_id == op.user_id)
            ).all())  # fmt: skip
            if count >= MAX_FILTERS_PER_USER:
                raise OperationRefused("conflict", f"at most {MAX_FILTERS_PER_USER} filters")
            self._free(conn, op.user_id, values["name"], None)
            new_id = conn.scalar(
                insert(SavedFilter).values(
                    user_id=op.user_id, name=values["name"], params=values.get("params", {}),
                    created_at=ctx.now,
                ).returning(SavedFilter.id)
            )  # fmt: skip
            assert new_id is not None
            return int(new_id)
        owner = self._owner(conn, op.filter_id, op.user_id, op.admin)
        if "name" in values:
            self._free(conn, owner, values["name"], op.filter_id)
        if values:
            conn.execute(update(SavedFilter).where(SavedFilter.id == op.filter_id).values(**values))
        return op.filter_id

    @staticmethod
    def _owner(conn: Connection, filter_id: int, user_id: int, admin: bool) -> int:
        owner = conn.scalar(select(SavedFilter.user_id).where(SavedFilter.id == filter_id))
        # Another user's filter is answered as absent: its existence is not theirs to know.
        if owner is None or (owner != user_id and not admin):
            raise OperationRefused("not_found", f"no saved filter {filter_id}")
        return int(owner)

    @staticmethod
    def _free(conn: Connection, user_id: int, name: str, filter_id: int | None) -> None:
        taken = conn.scalar(
            select(SavedFilter.id).where(SavedFilter.user_id == user_id, SavedFilter.name == name)
        )
        if taken is not None and taken != filter_id:
            raise OperationRefused("conflict", f"you already have a filter named {name!r}", "name")
