"""contamination_checks: the guard's verdict per question and test-set fingerprint, so scans are incremental

Every export scanned every accepted question against every benchmark test item: 28-30 s at the paper's
size, which kept an export with its guard over a minute. A verdict depends only on the question's text, the
test items and the guard's settings; this table keeps it with a digest of the text it judged, under a
fingerprint of the other two, and a scan checks only the questions without a verdict for their current
text under the current fingerprint.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contamination_checks",
        sa.Column("question_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("question_sha256", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_contamination_checks_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("question_id", name=op.f("pk_contamination_checks")),
    )


def downgrade() -> None:
    op.drop_table("contamination_checks")
