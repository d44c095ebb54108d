"""division snapshots and line source refs

A 과's execution of record as of a date (budget.division_snapshot) gets its own table, kept
apart from the programs; every budget line version keeps the report line it came from.

Revision ID: budget_0004
Revises: budget_0003
Create Date: 2026-11-26 11:20:26.747819
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'budget_0004'
down_revision: str | None = 'budget_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('budget_division_snapshot',
    sa.Column('office', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('division', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('current', sa.BigInteger(), nullable=True),
    sa.Column('committed', sa.BigInteger(), nullable=True),
    sa.Column('spent', sa.BigInteger(), nullable=True),
    sa.Column('source_ref', sa.JSON(), nullable=True),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('office', 'division', 'fiscal_year', 'as_of')
    )
    with op.batch_alter_table('budget_line_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_ref', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('budget_line_version', schema=None) as batch_op:
        batch_op.drop_column('source_ref')

    op.drop_table('budget_division_snapshot')
