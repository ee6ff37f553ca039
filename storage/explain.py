"""The query plan of a statement on either engine, for the tests and benchmarks that check a
query reads the index it was written for (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on
PostgreSQL). The statement keeps its bound parameters, so the plan is the one it runs with.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    verb = "EXPLAIN QUERY PLAN" if compiler.dialect.name == "sqlite" else "EXPLAIN"
    return f"{verb} {compiler.process(element.statement, **kw)}"


def query_plan(conn: Connection, statement: Any) -> str:
    """The plan, one line per step (SQLite: each step's ``detail``)."""
    rows = conn.execute(_Explain(statement)).all()
    if conn.dialect.name == "sqlite":
        return "\n".join(str(row[-1]) for row in rows)
    return "\n".join(str(row[0]) for row in rows)
