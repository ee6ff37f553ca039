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
match: a second and more for a word in a tenth of a million rows), a set split where the
page's rows are likely to end so that only its small newer part is usually built.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    and_,
    bindparam,
    column,
    literal_column,
    or_,
    text,
)
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
SPLIT_AT = 2_000  # SQLite: newest matches in the first part of the set (see _fts5_matches)
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


def matches(
    conn: Connection, query: str, id_column: Any, below: int | None = None
) -> ColumnElement[bool]:
    """A condition on the notifications table: the row contains every word of ``query``.
    Nothing searchable matches nothing. On SQLite this asks the FTS index how many rows
    match first, and ``below`` (the id of the row a newest-first page starts after, if
    any) tells where the page's matches are likely to be (see the module's docstring)."""
    if conn.dialect.name == "sqlite":
        return _fts5_matches(conn, query, id_column, below)
    expression = tsquery(query)
    if expression is None:
        return literal_column("0") == 1
    searched = text("notifications.fts_document @@ to_tsquery('simple'::regconfig, :tsq)")
    return searched.bindparams(bindparam("tsq", expression))  # type: ignore[return-value]


def _fts5_ids(conn: Connection, expression: str, limit: int) -> list[int]:
    found = conn.execute(text(_FTS5_IDS + " LIMIT :limit"), {"fts": expression, "limit": limit})
    return [int(row[0]) for row in found]


def _fts5_set(expression: str, bound: str = "", split: int | None = None) -> Any:
    """The FTS5 matches as a subquery of rowids, ``bound`` (a condition on the rowid and
    ``:split``) added."""
    params: list[BindParameter[Any]] = [bindparam("fts", expression, unique=True)]
    if bound:
        params.append(bindparam("split", split, unique=True))
    sql = _FTS5_IDS + (f" AND rowid {bound}" if bound else "")
    return text(sql).bindparams(*params).columns(column("rowid", Integer))


def _fts5_matches(
    conn: Connection, query: str, id_column: Any, below: int | None
) -> ColumnElement[bool]:
    expression = fts5_query(query)
    exact = fts5_query(query, prefix=False)
    if expression is None or exact is None:
        return literal_column("0") == 1
    # The words as typed match no more rows than with the last one as a prefix, and cost
    # nothing to count this far; a prefix (every word that starts so) is merged from all
    # those words' lists, so it is counted only when the exact words are few.
    if len(_fts5_ids(conn, exact, FEW_MATCHES + 1)) <= FEW_MATCHES:
        ids = _fts5_ids(conn, expression, FEW_MATCHES + 1)
        if len(ids) <= FEW_MATCHES:
            found: ColumnElement[bool] = id_column.in_(ids)
            return found
    walked = UnaryExpression(id_column, operator=custom_op("+"), type_=id_column.type)
    # Many rows match. The set SQLite checks the walked rows against is built once, when
    # first needed, and costs as many rows as it holds; ids grow with time, so the rows
    # of a newest-first page are mostly among the newest matches below where it starts.
    # The set is split there, SPLIT_AT matches down: the older part is built only if the
    # walk reaches it. Either way every match is in one of the two parts.
    split = conn.scalar(
        text(
            "SELECT rowid FROM notifications_fts WHERE notifications_fts MATCH :fts"
            + ("" if below is None else " AND rowid < :below")
            + " ORDER BY rowid DESC LIMIT 1 OFFSET :skip"
        ),
        {"fts": exact, "below": below, "skip": SPLIT_AT},
    )
    if split is None:
        found = walked.in_(_fts5_set(expression))
        return found
    return or_(
        and_(walked >= split, walked.in_(_fts5_set(expression, ">= :split", split))),
        and_(walked < split, walked.in_(_fts5_set(expression, "< :split", split))),
    )
