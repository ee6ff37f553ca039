"""Case numbers: ``CAS-000123``, unique across every writer of the database.

PostgreSQL takes them from the ``case_numbers`` sequence (no lock, so concurrent batches
and daemons never wait on each other; a rolled-back batch leaves a gap). SQLite takes them
with one UPDATE … RETURNING of the counter row, safe because the writer holds the
database's only write lock (BEGIN IMMEDIATE) until commit. The unique index on
cases.number is the backstop on both.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from cases.statements import RESERVE_NUMBERS


@dataclass(frozen=True, slots=True)
class CaseNumbers:
    prefix: str = "CAS-"
    width: int = 6

    def format(self, n: int) -> str:
        return f"{self.prefix}{n:0{self.width}d}"

    def reserve(self, conn: Connection, count: int) -> list[str]:
        """``count`` new case numbers, ascending."""
        if conn.dialect.name == "postgresql":
            rows = conn.execute(
                text("SELECT nextval('case_numbers') FROM generate_series(1, :n)"), {"n": count}
            )
            return [self.format(n) for n in sorted(int(n) for n in rows.scalars())]
        last = conn.scalar(RESERVE_NUMBERS, {"n": count})
        if last is None:
            raise RuntimeError("case counter row missing: run `ventanilla db upgrade`")
        return [self.format(n) for n in range(last - count + 1, last + 1)]
