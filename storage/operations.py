"""Typed write operations and the runner that executes a batch of them in one transaction.

``storage`` knows operations only as values: each operation type has an ``Executor`` that
runs it inside the transaction, and the composition root (``config``) decides which
executors exist. ``TransactionRunner`` takes whatever the write path collected, groups it
by type and runs each group, so that one failing operation never fails its batch-mates:

- an *isolated* executor's operations each run in a SAVEPOINT of their own; a refusal
  (``OperationRefused``) or an error rolls back that operation only and becomes its answer;
- a *set-based* executor (the intake batch: a fixed number of statements for the whole
  group) runs its group in one SAVEPOINT; if that fails, every operation is tried alone,
  and one that still fails is handed to the executor's ``failed`` (the intake records the
  message as a failed inbound row there, so nothing accepted is lost).

Errors that mean the database itself is unavailable are not isolated: they end the
transaction and every caller in the batch hears "retry later".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from sqlalchemy.engine import Connection

from storage.db import is_unavailable_error
from storage.models import utcnow

log = logging.getLogger(__name__)

RefusalKind = Literal["invalid", "not_found", "conflict", "stale", "forbidden"]


class OperationRefused(Exception):
    """The operation cannot be applied as asked; nothing it did is kept.

    ``kind`` says why in terms any front end can map (the API: 422, 404, 409, 412, 403);
    ``field`` names the offending input where there is one.
    """

    def __init__(self, kind: RefusalKind, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message, self.field))


class OperationFailed(Exception):
    """An operation raised an unexpected error; it was rolled back alone.

    Carries only text, so that it crosses the writer process's pipe whatever the original
    exception was.
    """


@dataclass(frozen=True, slots=True)
class Failure:
    """The answer of an operation that did not apply: the error its caller raises."""

    error: Exception


@dataclass
class WriteContext:
    """Shared by every operation of one transaction: one clock reading, and a scratch dict
    for facts worth reading once per transaction (e.g. the catalog version)."""

    now: datetime = field(default_factory=utcnow)
    memo: dict[str, Any] = field(default_factory=dict)


class Executor:
    """Runs operations of one type inside the caller's transaction. Subclasses override
    ``run_one`` (isolated) or ``run`` (set-based, ``isolated = False``)."""

    isolated: ClassVar[bool] = True

    def run(self, conn: Connection, ops: Sequence[Any], ctx: WriteContext) -> list[Any]:
        return [self.run_one(conn, op, ctx) for op in ops]

    def run_one(self, conn: Connection, op: Any, ctx: WriteContext) -> Any:
        # Reached only by an executor that overrides neither method: a wiring mistake,
        # answered as that operation's failure like any other error.
        raise TypeError(f"{type(self).__name__} implements neither run_one nor run")

    def failed(self, conn: Connection, op: Any, error: Exception, ctx: WriteContext) -> Any:
        """The answer for ``op`` after it failed alone, written in a fresh savepoint, or
        None to hand the error to its caller."""
        return None


class TransactionRunner:
    """``runner(conn, ops)``: every operation's answer (a result or a ``Failure``), in order."""

    def __init__(self, executors: Mapping[type, Executor]) -> None:
        self.executors = dict(executors)

    def __call__(self, conn: Connection, ops: Sequence[Any]) -> list[Any]:
        ctx = WriteContext()
        answers: list[Any] = [None] * len(ops)
        groups: dict[type, list[int]] = {}
        for index, op in enumerate(ops):
            groups.setdefault(type(op), []).append(index)
        for kind, indexes in groups.items():
            executor = self.executors.get(kind)
            if executor is None:
                for i in indexes:
                    answers[i] = Failure(OperationFailed(f"no executor for {kind.__name__}"))
            elif executor.isolated:
                for i in indexes:
                    answers[i] = self._alone(conn, executor, ops[i], ctx)
            else:
                together = self._together(conn, executor, ops, indexes, ctx)
                for i, answer in zip(indexes, together, strict=True):
                    answers[i] = answer
        return answers

    def _together(
        self,
        conn: Connection,
        executor: Executor,
        ops: Sequence[Any],
        indexes: list[int],
        ctx: WriteContext,
    ) -> list[Any]:
        group = [ops[i] for i in indexes]
        savepoint = conn.begin_nested()
        try:
            results = executor.run(conn, group, ctx)
        except Exception as exc:
            savepoint.rollback()
            if is_unavailable_error(exc):
                raise
            log.warning(
                "a group of %d %s failed (%s); trying each alone",
                len(group),
                type(group[0]).__name__,
                exc,
            )
            return [self._alone(conn, executor, op, ctx) for op in group]
        savepoint.commit()
        return results

    def _alone(self, conn: Connection, executor: Executor, op: Any, ctx: WriteContext) -> Any:
        savepoint = conn.begin_nested()
        try:
            result = executor.run(conn, [op], ctx)[0]
        except OperationRefused as refused:
            savepoint.rollback()
            return Failure(refused)
        except Exception as exc:
            savepoint.rollback()
            if is_unavailable_error(exc):
                raise
            return self._failed(conn, executor, op, exc, ctx)
        savepoint.commit()
        return result

    def _failed(
        self, conn: Connection, executor: Executor, op: Any, exc: Exception, ctx: WriteContext
    ) -> Any:
        log.error("%s failed: %s: %s", type(op).__name__, type(exc).__name__, exc)
        savepoint = conn.begin_nested()
        try:
            recorded = executor.failed(conn, op, exc, ctx)
        except Exception as second:
            savepoint.rollback()
            if is_unavailable_error(second):
                raise
            recorded = None
            log.error("recording the failure of %s failed too: %s", type(op).__name__, second)
        else:
            savepoint.commit()
        if recorded is not None:
            return recorded
        return Failure(OperationFailed(f"{type(exc).__name__}: {exc}"[:2000]))
