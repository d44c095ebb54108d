"""division snapshot original and unit

A 예산현황's printed 소계 and 계 are division snapshots too: they state 본예산 as printed and the
unit the table prints (each figure is rounded to it). A 실's own figures (its 계) are kept with
division "" (no new key column: the primary key already holds office and division).

Revision ID: budget_0005
Revises: budget_0004
Create Date: 2026-11-26 11:35:43.597564
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'budget_0005'
down_revision: str | None = 'budget_0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('budget_division_snapshot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('budget_division_snapshot', schema=None) as batch_op:
        batch_op.drop_column('unit')
        batch_op.drop_column('original')
