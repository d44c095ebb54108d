"""snapshots: the index on program_id alone dropped

The unique (program_id, fiscal_year, as_of, revision) index starts with program_id and serves
every lookup by program; the second index was one more B-tree to update per applied snapshot.

Revision ID: budget_0008
Revises: budget_0007
Create Date: 2026-11-26 20:15:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = 'budget_0008'
down_revision: str | None = 'budget_0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_budget_snapshot_program_id', table_name='budget_snapshot')


def downgrade() -> None:
    op.create_index('ix_budget_snapshot_program_id', 'budget_snapshot', ['program_id'], unique=False)
