"""Case operations: case versions (ETag), clones, technicians in several areas, the catalog
version, and inbound fingerprints.

- ``cases.version`` is bumped by every change of a case's fields; the API returns it as an
  ETag and refuses a PATCH whose If-Match is stale. ``cases.cloned_from_id`` links a clone
  to its original.
- A technician may work in several areas (``technician_areas``), has a language and is
  ``available`` or not (was ``active``).
- ``counters.catalog`` is bumped by every catalog change, so every writer (and every daemon
  on a shared database) reloads the catalog before its next message.
- ``inbound.fingerprint`` digests what the sender said, to tell a retransmission from a
  different message that reuses an external id (Message-ID, Idempotency-Key).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("version", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column(
                "cloned_from_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_cases_cloned_from_id_cases"), "cases", ["cloned_from_id"], ["id"]
        )
    op.create_table(
        "technician_areas",
        sa.Column(
            "technician_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("area_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"],
            ["areas.id"],
            name=op.f("fk_technician_areas_area_id_areas"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["technician_id"],
            ["technicians.id"],
            name=op.f("fk_technician_areas_technician_id_technicians"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("technician_id", "area_id", name=op.f("pk_technician_areas")),
    )
    op.execute(
        "INSERT INTO technician_areas (technician_id, area_id) "
        "SELECT id, area_id FROM technicians WHERE area_id IS NOT NULL"
    )
    with op.batch_alter_table("technicians", schema=None) as batch_op:
        batch_op.alter_column("active", new_column_name="available")
        batch_op.add_column(
            sa.Column("language", sa.String(length=8), nullable=False, server_default="es")
        )
        batch_op.drop_constraint("fk_technicians_area_id_areas", type_="foreignkey")
        batch_op.drop_column("area_id")
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
    op.execute("INSERT INTO counters (name, value) VALUES ('catalog', 0)")


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'catalog'")
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.drop_column("fingerprint")
    with op.batch_alter_table("technicians", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "area_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_technicians_area_id_areas"), "areas", ["area_id"], ["id"]
        )
        batch_op.drop_column("language")
        batch_op.alter_column("available", new_column_name="active")
    op.execute(
        "UPDATE technicians SET area_id = (SELECT min(area_id) FROM technician_areas "
        "WHERE technician_areas.technician_id = technicians.id)"
    )
    op.drop_table("technician_areas")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_cases_cloned_from_id_cases"), type_="foreignkey")
        batch_op.drop_column("cloned_from_id")
        batch_op.drop_column("version")
