"""Attachments on agent replies, and who made each delivery attempt.

- ``notifications.attachments``: the files a notification carries, as the attachment
  store's digests with their names and types (``[{"sha256", "filename", "content_type",
  "size"}]``), so a retry or a resend sends the same files.
- ``delivery_attempts.dispatcher``: the dispatcher (host:pid:tag) that made the attempt,
  so with several daemons the log says which one sent a message.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attachments", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatcher", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_column("dispatcher")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("attachments")
