"""Reply references of inbound mail, and the indexes case reads and customer pages need.

- ``message_refs``: the Message-IDs an inbound email replies to, so an original that
  arrives after its reply (concurrent deliveries finish in any order) joins the reply's
  case.
- ``cases.parent_id``: a case's children are listed with every read of the case.
- ``customer_identities.customer_id``, ``notifications (customer_id, created_at)``: a
  customer's identities and interaction history without scanning the tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "message_refs",
        sa.Column("id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("ref", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_refs_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_refs")),
    )
    with op.batch_alter_table("message_refs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_refs_ref"), ["ref"], unique=False)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_parent", ["parent_id"], unique=False)
    with op.batch_alter_table("customer_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_identities_customer_id"), ["customer_id"], unique=False
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_customer_created", ["customer_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_customer_created")
    with op.batch_alter_table("customer_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_identities_customer_id"))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_parent")
    with op.batch_alter_table("message_refs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_refs_ref"))
    op.drop_table("message_refs")
