"""outbox: a partial index of the pending rows instead of the published_at index

Marking a round published rewrote an entry per row in the published_at index (as large as the
table); the relay only ever looks for the rows not yet published nor failed, by id.

Revision ID: programs_0006
Revises: programs_0005
Create Date: 2026-11-26 17:25:37.112203
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'programs_0006'
down_revision: str | None = 'programs_0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: as services.common.db.PENDING (a migration keeps its own copy: the code may change later)
PENDING = 'published_at IS NULL AND failed_at IS NULL'


def upgrade() -> None:
    with op.batch_alter_table('programs_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_programs_outbox_pending', ['id'], unique=False,
                              postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))
        batch_op.drop_index(batch_op.f('ix_programs_outbox_published_at'))


def downgrade() -> None:
    with op.batch_alter_table('programs_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_programs_outbox_published_at'), ['published_at'], unique=False)
        batch_op.drop_index('ix_programs_outbox_pending')
