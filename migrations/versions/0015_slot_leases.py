"""slot_leases: each orchestrator's share of a server's cap, so several share one cap

A row per (server, holder): the slots the holder may have in flight to that server, what it has in flight,
the cap its pipeline file gives, and when it last renewed the row. The holders of one server rebalance under
a lock so the granted slots never add up to more than the cap; a row not renewed for its time to live is a
dead holder's and is deleted by the next holder that rebalances (reasonmed/db/slot_leases.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slot_leases",
        sa.Column("server", sa.String(400), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("in_use", sa.Integer(), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server", "holder", name=op.f("pk_slot_leases")),
    )


def downgrade() -> None:
    op.drop_table("slot_leases")
