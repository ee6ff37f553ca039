"""Notifications by recipient and time: the acknowledgement cap's per-batch lookup.

Without it the cap counted a recipient's acknowledgements of the last day by scanning every
notification of that day (the created_at index), once per batch: intake slowed down as
the day's outbox grew.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 11:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_recipient_created", ["recipient", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_recipient_created")
