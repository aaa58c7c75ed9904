"""question outcomes say whether simulated models reached them

question_outcomes.simulated: true when the question was finished by the project's simulator (model names
starting with ``sim/``). A run with real models does not count such a question as done: it redoes it
(reasonmed/simulated.py). Existing outcomes are marked from the models of their question's paths.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "question_outcomes", sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.execute(
        "UPDATE question_outcomes SET simulated = true WHERE EXISTS ("
        "SELECT 1 FROM reasoning_paths p WHERE p.question_id = question_outcomes.question_id AND p.model LIKE 'sim/%')"
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would break the audit views over it.
    op.drop_column("question_outcomes", "simulated")
