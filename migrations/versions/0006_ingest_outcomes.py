"""ingest outcomes: why a file failed, and how many of its records reuse an id of another question

ingest_files.error: the reason a file ended 'failed' (status is now running | done | failed; a file whose
ingest raised or was interrupted is never left 'running'). ingest_files.n_id_conflicts: records whose
(source, id) was already held by a question with other content; both are kept and the count is reported.

Stored question text is unchanged: rows written before this revision hold NFKC text, and the dedup hash
is computed from the NFKC form of the text either way, so their hashes stay valid without a rehash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_files") as batch:
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("n_id_conflicts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("ingest_files") as batch:
        batch.drop_column("n_id_conflicts")
        batch.drop_column("error")
