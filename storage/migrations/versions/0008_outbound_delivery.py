"""Outbound delivery: what the dispatcher and the notifiers need on the outbox and around it.

- ``notifications``: the audience (customer, technician, watcher) and technician, the
  provider a row goes through, the HTML part and headers it is sent with, the context it
  was rendered from, the reason a row is not sent, SMS segments, the channels still to try
  for a technician, and the claim (who holds it in ``sending`` and until when).
- ``delivery_attempts``: the provider, its response code and message id, and whether the
  attempt may have delivered twice (a claim lost before its outcome was recorded).
- ``technician_channels``: a technician's channels in order of preference, with the
  address each needs; ``opt_outs``: addresses that asked not to be messaged.
- ``cases``: the first agent reply's time and the watchers told of status changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audience", sa.String(length=12), nullable=False, server_default="customer")
        )
        batch_op.add_column(sa.Column("technician_id", ID, nullable=True))
        batch_op.add_column(
            sa.Column("provider", sa.String(length=60), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("html", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("context", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("fallback", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("lease_until", WHEN, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_technician_id_technicians"),
            "technicians",
            ["technician_id"],
            ["id"],
        )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("provider", sa.String(length=60), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("provider_code", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("provider_message_id", sa.String(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "possible_duplicate", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_response_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("watchers", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "technician_channels",
        sa.Column("id", ID, nullable=False),
        sa.Column("technician_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["technician_id"],
            ["technicians.id"],
            name=op.f("fk_technician_channels_technician_id_technicians"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_technician_channels")),
        sa.UniqueConstraint(
            "technician_id", "position", name="uq_technician_channels_position"
        ),
    )
    op.create_table(
        "opt_outs",
        sa.Column("id", ID, nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
        sa.UniqueConstraint("channel", "address", name="uq_opt_outs_channel_address"),
    )


def downgrade() -> None:
    op.drop_table("opt_outs")
    op.drop_table("technician_channels")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("watchers")
        batch_op.drop_column("first_response_at")
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        for column in ("possible_duplicate", "provider_message_id", "provider_code", "provider"):
            batch_op.drop_column(column)
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_notifications_technician_id_technicians"), type_="foreignkey"
        )
        for column in (
            "lease_until", "claimed_by", "fallback", "segments", "status_reason", "context",
            "headers", "html", "provider", "technician_id", "audience",
        ):  # fmt: skip
            batch_op.drop_column(column)
