"""Deliveries carry the end of their retry window (redrive opens a new one).

Revision ID: notify_0003
Revises: notify_0002
Create Date: 2026-11-26 11:04:51.086228
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'notify_0003'
down_revision: str | None = 'notify_0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notify_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_until', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('notify_delivery', schema=None) as batch_op:
        batch_op.drop_column('retry_until')

