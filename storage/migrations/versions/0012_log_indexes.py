"""The outbound log's search on PostgreSQL: the indexed document stored in a column.

0010 indexed an expression (``to_tsvector`` over recipient, subject and body), so every
row a search touched had its document computed again: each row a GIN match returns is
checked against the query (a prefix match always is), and a list walked in time order
checks each row it passes. On a million rows a rare word took 0.2–1 s for its first page.
Stored, the document is computed once per write, and the GIN index is over the column
(what PostgreSQL's documentation advises, §12.2.2).

- ``notifications.fts_document``: ``tsvector``, generated from ``FTS_DOCUMENT_PG`` and
  stored; not in the models, like the rest of the full-text index (``storage.migrate``).
- ``ix_notifications_fts_document``: GIN over it; replaces ``ix_notifications_fts``.

Adding the column rewrites the table, locked meanwhile (3.5 minutes for a million rows on a
busy 2-core machine, bench/log.py). SQLite is unchanged: its FTS5 table is the index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

from alembic import op

from storage.search_sql import FTS_DOCUMENT_PG

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "ALTER TABLE notifications ADD COLUMN fts_document tsvector "
        f"GENERATED ALWAYS AS ({FTS_DOCUMENT_PG}) STORED"
    )
    op.execute(
        "CREATE INDEX ix_notifications_fts_document ON notifications USING gin (fts_document)"
    )
    op.execute("DROP INDEX IF EXISTS ix_notifications_fts")
    # The planner needs the new column's statistics to tell a rare word from a common one
    # (walk the list in time order, or take the index's matches and sort them); a table
    # rewrite does not count towards autovacuum's next ANALYZE.
    op.execute("ANALYZE notifications")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(f"CREATE INDEX ix_notifications_fts ON notifications USING gin ({FTS_DOCUMENT_PG})")
    op.execute("DROP INDEX IF EXISTS ix_notifications_fts_document")
    op.execute("ALTER TABLE notifications DROP COLUMN fts_document")
