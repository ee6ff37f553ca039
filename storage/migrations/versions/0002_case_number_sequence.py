"""PostgreSQL: case numbers from a sequence, so concurrent writers never wait on each other.

With several batches in flight (``[intake] writers``), reserving numbers by updating the
counter row would hold that row's lock until each commit and serialize the batches. A
sequence hands out numbers without a lock; a rolled-back batch leaves a gap, which is
harmless (numbers are unique, not necessarily consecutive). SQLite keeps the counter row:
it has one writer anyway.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE case_numbers AS bigint START WITH 1")
    # Continue after whatever the counter row already handed out.
    op.execute(
        "SELECT setval('case_numbers', GREATEST(value, 1), value > 0) FROM counters WHERE name = 'case'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "UPDATE counters SET value = (SELECT last_value FROM case_numbers) WHERE name = 'case'"
    )
    op.execute("DROP SEQUENCE case_numbers")
