"""scoped event ids and content hash

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-11-26 11:09:05.353154

Rows stored before keep their id as the id their source sent (they were published under it) and
get the hash of the canonical JSON of what was stored, so a resend of an old event is still a
duplicate and other content under its id a conflict.
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'ingest_0002'
down_revision: str | None = 'ingest_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _content_hash(value: bytes) -> str:
    # The same canonical form as contracts.canonical_json (frozen here: migrations do not import app code).
    try:
        canonical = json.dumps(json.loads(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    except ValueError:
        return hashlib.sha256(value).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table('ingest_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        batch_op.add_column(sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))

    conn = op.get_bind()
    outbox = sa.table('ingest_outbox', sa.column('id', sa.Integer), sa.column('event_id', sa.String),
                      sa.column('value', sa.LargeBinary), sa.column('source_event_id', sa.String),
                      sa.column('content_hash', sa.String))
    last = 0
    while True:
        rows = conn.execute(sa.select(outbox.c.id, outbox.c.event_id, outbox.c.value)
                            .where(outbox.c.id > last).order_by(outbox.c.id).limit(1000)).all()
        if not rows:
            break
        conn.execute(
            outbox.update().where(outbox.c.id == sa.bindparam('row_id')).values(
                source_event_id=sa.bindparam('sid'), content_hash=sa.bindparam('digest')),
            [{'row_id': r.id, 'sid': r.event_id, 'digest': _content_hash(bytes(r.value))} for r in rows],
        )
        last = rows[-1].id

    with op.batch_alter_table('ingest_outbox', schema=None) as batch_op:
        batch_op.alter_column('source_event_id', existing_type=sqlmodel.sql.sqltypes.AutoString(length=36),
                              nullable=False)
        batch_op.alter_column('content_hash', existing_type=sqlmodel.sql.sqltypes.AutoString(length=64),
                              nullable=False)
        batch_op.create_unique_constraint('uq_ingest_outbox_source_event', ['source', 'source_event_id'])


def downgrade() -> None:
    with op.batch_alter_table('ingest_outbox', schema=None) as batch_op:
        batch_op.drop_constraint('uq_ingest_outbox_source_event', type_='unique')
        batch_op.drop_column('content_hash')
        batch_op.drop_column('source_event_id')
