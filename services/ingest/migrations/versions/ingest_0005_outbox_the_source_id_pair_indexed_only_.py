"""outbox: the (source, id) pair indexed only for scoped rows

The rows published under the id their source sent (nearly all) are unique by their event_id
already; only the rows published under a derived id need the pair in an index of its own.

Revision ID: ingest_0005
Revises: ingest_0004
Create Date: 2026-11-26 20:03:47.442619
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'ingest_0005'
down_revision: str | None = 'ingest_0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: as services.ingest.store.SCOPED (a migration keeps its own copy: the code may change later)
SCOPED = 'source_event_id <> event_id'


def upgrade() -> None:
    with op.batch_alter_table('ingest_outbox', schema=None) as batch_op:
        batch_op.drop_constraint('uq_ingest_outbox_source_event', type_='unique')
        batch_op.create_index('uq_ingest_outbox_scoped_source_event', ['source', 'source_event_id'], unique=True,
                              sqlite_where=sa.text(SCOPED), postgresql_where=sa.text(SCOPED))


def downgrade() -> None:
    with op.batch_alter_table('ingest_outbox', schema=None) as batch_op:
        batch_op.drop_index('uq_ingest_outbox_scoped_source_event')
        batch_op.create_unique_constraint('uq_ingest_outbox_source_event', ['source', 'source_event_id'])
