"""verdicts by verifier model; the read options an ingest used

An index on verdicts (verifier_model, outcome) for the "verdicts by model" audits, and
ingest_files.read_options: the options a file was read with (source, column mapping, MedMCQA cop
base, answer index base). A finished file read again with the same options is skipped; with other
options it is read again, so a first ingest with a wrong --map or --cop-base can be corrected.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_verdicts_verifier_model_outcome", "verdicts", ["verifier_model", "outcome"], unique=False
    )
    with op.batch_alter_table("ingest_files") as batch:
        batch.add_column(sa.Column("read_options", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_files") as batch:
        batch.drop_column("read_options")
    op.drop_index("ix_verdicts_verifier_model_outcome", table_name="verdicts")
