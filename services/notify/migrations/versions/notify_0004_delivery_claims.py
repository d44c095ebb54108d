"""Deliveries carry a dispatcher round's claim and its lease (several notify replicas send
different deliveries; a dead replica's claims expire).

Revision ID: notify_0004
Revises: notify_0003
Create Date: 2026-11-26 11:21:32.884962
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'notify_0004'
down_revision: str | None = 'notify_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notify_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_notify_delivery_claimed_by'), ['claimed_by'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('notify_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notify_delivery_claimed_by'))
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')

