"""Free-text search over the outbound log with each database's own full-text index.

SQLite: the FTS5 table ``notifications_fts`` (external content, kept in step by triggers;
migration 0010). PostgreSQL: the stored column ``fts_document`` (``FTS_DOCUMENT_PG``,
computed by the database on every write; migration 0011) and its GIN index. Both take every
word of the search as required (AND), case- and accent-insensitively on SQLite,
case-insensitively on PostgreSQL; the last word also matches as a prefix, so a search box
finds as one types.

The list is ordered by time, and the good plan depends on how many rows match, which
PostgreSQL estimates from its statistics and SQLite cannot know. On SQLite the search asks
the FTS index first: when at most ``FEW_MATCHES`` rows match, the condition names their
ids, and SQLite fetches them by id and sorts them; when more match, the list's own index
is walked in order and each row is kept if it is in the search's set (the unary ``+``
keeps SQLite from driving the query from that set, which meant fetching and sorting every
match: a second and more for a word in a tenth of a million rows).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, column, literal_column, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import UnaryExpression
from sqlalchemy.sql.operators import custom_op

# The indexed document (migrations 0010 and 0011): PostgreSQL stores it in the column
# ``notifications.fts_document``, so that checking a row needs no ``to_tsvector`` again.
FTS_DOCUMENT_PG = (
    "to_tsvector('simple'::regconfig, coalesce(recipient, '') || ' ' || "
    "coalesce(subject, '') || ' ' || coalesce(body, ''))"
)
_WORD = re.compile(r"[\w@.+-]+", re.UNICODE)
MAX_WORDS = 12
FEW_MATCHES = 1_000  # SQLite: up to this many matches are fetched by id (see above)
_FTS5_IDS = "SELECT rowid FROM notifications_fts WHERE notifications_fts MATCH :fts"


def words(query: str) -> list[str]:
    """The searchable words of ``query`` (letters, digits and the characters addresses and
    numbers carry), at most ``MAX_WORDS``."""
    return [w for w in _WORD.findall(query) if w.strip(".+-@")][:MAX_WORDS]


def fts5_query(query: str, *, prefix: bool = True) -> str | None:
    """An FTS5 MATCH expression: each word a quoted string (so no word is read as an
    operator), the last one a prefix (unless ``prefix`` is false); None when nothing is
    searchable."""
    found = words(query)
    if not found:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in found]
    if prefix:
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


def matches(conn: Connection, query: str, id_column: Any) -> ColumnElement[bool]:
    """A condition on the notifications table: the row contains every word of ``query``.
    Nothing searchable matches nothing. On SQLite this asks the FTS index how many rows
    match first (see the module's docstring)."""
    if conn.dialect.name == "sqlite":
        return _fts5_matches(conn, query, id_column)
    expression = tsquery(query)
    if expression is None:
        return literal_column("0") == 1
    searched = text("notifications.fts_document @@ to_tsquery('simple'::regconfig, :tsq)")
    return searched.bindparams(bindparam("tsq", expression))  # type: ignore[return-value]


def _fts5_ids(conn: Connection, expression: str, limit: int) -> list[int]:
    found = conn.execute(text(_FTS5_IDS + " LIMIT :limit"), {"fts": expression, "limit": limit})
    return [int(row[0]) for row in found]


def _fts5_matches(conn: Connection, query: str, id_column: Any) -> ColumnElement[bool]:
    expression = fts5_query(query)
    if expression is None:
        return literal_column("0") == 1
    # The words as typed match no more rows than with the last one as a prefix, and cost
    # nothing to count this far; a prefix (every word that starts so) is merged from all
    # those words' lists, so it is counted only when the exact words are few.
    exact = fts5_query(query, prefix=False)
    if exact is not None and len(_fts5_ids(conn, exact, FEW_MATCHES + 1)) <= FEW_MATCHES:
        ids = _fts5_ids(conn, expression, FEW_MATCHES + 1)
        if len(ids) <= FEW_MATCHES:
            found: ColumnElement[bool] = id_column.in_(ids)
            return found
    walked = UnaryExpression(id_column, operator=custom_op("+"), type_=id_column.type)
    found = walked.in_(
        text(_FTS5_IDS).bindparams(bindparam("fts", expression)).columns(column("rowid", Integer))
    )
    return found
