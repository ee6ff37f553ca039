"""The outbound log: indexes for every list filter, full-text search, resend jobs, and
console sign-in.

- Every filter of ``GET /api/v1/notifications`` gets an index that also orders by the
  list's key (created_at, id), so any page, however deep, is an index range.
- Free text over recipient, subject and body: an FTS5 table kept in step by triggers on
  SQLite; a GIN index over the same text as a ``simple`` tsvector on PostgreSQL.
- ``provider_id`` indexed: a delivery receipt naming only the provider's id finds its row.
- ``resend_jobs``: a bulk resend, its frozen selection and its progress (so it survives a
  restart and queues each row once).
- ``users.password_hash`` and ``console_sessions`` for the web console's sign-in.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.search_sql import FTS_DOCUMENT_PG

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIST_INDEXES = {
    "ix_notifications_list": ("created_at", "id"),
    "ix_notifications_status_list": ("status", "created_at", "id"),
    "ix_notifications_channel_list": ("channel", "created_at", "id"),
    "ix_notifications_template_list": ("template", "created_at", "id"),
    "ix_notifications_provider_list": ("provider", "created_at", "id"),
    "ix_notifications_case_list": ("case_id", "created_at", "id"),
    "ix_notifications_resend_list": ("resend_of", "created_at", "id"),
    "ix_notifications_sent_list": ("sent_at", "id"),
    "ix_notifications_provider_id": ("provider_id",),
}
REPLACED = {
    "ix_notifications_created": ("created_at",),
    "ix_notifications_case": ("case_id",),
}


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=200), nullable=True))
    op.create_table(
        "console_sessions",
        sa.Column("id", Id, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_console_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )  # fmt: skip
    op.create_table(
        "resend_jobs",
        sa.Column("id", Id, nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("as_sent", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("position", sa.JSON(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resend_jobs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_resend_jobs_idempotency_key")),
    )
    op.create_index("ix_resend_jobs_status", "resend_jobs", ["status"])
    for name, columns in REPLACED.items():
        op.drop_index(name, table_name="notifications")
    for name, columns in LIST_INDEXES.items():
        op.create_index(name, "notifications", list(columns))
    # Manual rows are few: a partial index (the filter names the value as a literal).
    manual = sa.text("trigger = 'manual'")
    op.create_index(
        "ix_notifications_manual_list", "notifications", ["created_at", "id"],
        sqlite_where=manual, postgresql_where=manual,
    )  # fmt: skip
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # External-content FTS5: the text lives in notifications; the triggers keep the
        # index in step (https://sqlite.org/fts5.html#external_content_tables).
        op.execute(
            "CREATE VIRTUAL TABLE notifications_fts USING fts5("
            "recipient, subject, body, content='notifications', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER notifications_fts_ai AFTER INSERT ON notifications BEGIN "
            "INSERT INTO notifications_fts(rowid, recipient, subject, body) "
            "VALUES (new.id, new.recipient, new.subject, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER notifications_fts_ad AFTER DELETE ON notifications BEGIN "
            "INSERT INTO notifications_fts(notifications_fts, rowid, recipient, subject, body) "
            "VALUES ('delete', old.id, old.recipient, old.subject, old.body); END"
        )
        op.execute(
            "CREATE TRIGGER notifications_fts_au AFTER UPDATE OF recipient, subject, body "
            "ON notifications BEGIN "
            "INSERT INTO notifications_fts(notifications_fts, rowid, recipient, subject, body) "
            "VALUES ('delete', old.id, old.recipient, old.subject, old.body); "
            "INSERT INTO notifications_fts(rowid, recipient, subject, body) "
            "VALUES (new.id, new.recipient, new.subject, new.body); END"
        )
        op.execute("INSERT INTO notifications_fts(notifications_fts) VALUES ('rebuild')")
    else:
        op.execute(
            f"CREATE INDEX ix_notifications_fts ON notifications USING gin ({FTS_DOCUMENT_PG})"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS notifications_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS notifications_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_notifications_fts")
    op.drop_index("ix_notifications_manual_list", table_name="notifications")
    for name in LIST_INDEXES:
        op.drop_index(name, table_name="notifications")
    for name, columns in REPLACED.items():
        op.create_index(name, "notifications", list(columns))
    op.drop_index("ix_resend_jobs_status", table_name="resend_jobs")
    op.drop_table("resend_jobs")
    op.drop_table("console_sessions")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_hash")
