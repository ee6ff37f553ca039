"""SMS parts: the pieces of a long inbound SMS (Vonage's ``concat-ref``) until all are here.

Each part is answered only once it is stored, and parts may reach different daemons, so
they are assembled in the database; joined parts keep the inbound message they became so
that a retried part is known as a repeat.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_parts",
        sa.Column("id", Id, nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("concat_ref", sa.String(length=40), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inbound_id", Id, nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_id"], ["inbound.id"], name=op.f("fk_sms_parts_inbound_id_inbound")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_parts")),
        sa.UniqueConstraint("provider", "message_id", name="uq_sms_parts_provider_message_id"),
    )
    op.create_index("ix_sms_parts_group", "sms_parts", ["provider", "sender", "concat_ref"])
    op.create_index("ix_sms_parts_received", "sms_parts", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_sms_parts_received", table_name="sms_parts")
    op.drop_index("ix_sms_parts_group", table_name="sms_parts")
    op.drop_table("sms_parts")
