"""Free-text search over the outbound log with each database's own full-text index.

SQLite: the FTS5 table ``notifications_fts`` (external content, kept in step by triggers;
migration 0010). PostgreSQL: a GIN index over ``FTS_DOCUMENT_PG``, which a query must
repeat word for word for the planner to use the index. Both take every word of the search
as required (AND), case- and accent-insensitively on SQLite, case-insensitively on
PostgreSQL; the last word also matches as a prefix, so a search box finds as one types.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, column, literal_column, text

# The indexed document: the same expression in the migration and in every query.
FTS_DOCUMENT_PG = (
    "to_tsvector('simple'::regconfig, coalesce(recipient, '') || ' ' || "
    "coalesce(subject, '') || ' ' || coalesce(body, ''))"
)
_WORD = re.compile(r"[\w@.+-]+", re.UNICODE)
MAX_WORDS = 12


def words(query: str) -> list[str]:
    """The searchable words of ``query`` (letters, digits and the characters addresses and
    numbers carry), at most ``MAX_WORDS``."""
    return [w for w in _WORD.findall(query) if w.strip(".+-@")][:MAX_WORDS]


def fts5_query(query: str) -> str | None:
    """An FTS5 MATCH expression: each word a quoted string (so no word is read as an
    operator), the last one a prefix; None when nothing is searchable."""
    found = words(query)
    if not found:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in found]
    quoted[-1] += " *"
    return " ".join(quoted)


def tsquery(query: str) -> str | None:
    """A to_tsquery expression: each word quoted as a lexeme, ANDed, the last a prefix."""
    found = words(query)
    if not found:
        return None
    quoted = ["'" + w.lower().replace("'", "''").replace("\\", "\\\\") + "'" for w in found]
    quoted[-1] += ":*"
    return " & ".join(quoted)


def matches(dialect: str, query: str, id_column: Any) -> ColumnElement[bool]:
    """A condition on the notifications table: the row contains every word of ``query``.
    Nothing searchable matches nothing."""
    if dialect == "sqlite":
        expression = fts5_query(query)
        if expression is None:
            return literal_column("0") == 1
        found: ColumnElement[bool] = id_column.in_(
            text("SELECT rowid FROM notifications_fts WHERE notifications_fts MATCH :fts")
            .bindparams(bindparam("fts", expression))
            .columns(column("rowid", Integer))
        )
        return found
    expression = tsquery(query)
    if expression is None:
        return literal_column("0") == 1
    return text(f"{FTS_DOCUMENT_PG} @@ to_tsquery('simple'::regconfig, :tsq)").bindparams(
        bindparam("tsq", expression)
    )  # type: ignore[return-value]
