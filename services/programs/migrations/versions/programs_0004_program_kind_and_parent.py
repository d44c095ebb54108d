"""program kind and parent

The register keeps what ProgramRegistered says a program is (program / part / action_item) and
the program a part or action item belongs to; existing rows are programs.

Revision ID: programs_0004
Revises: programs_0003
Create Date: 2026-11-26 11:21:09.234475
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'programs_0004'
down_revision: str | None = 'programs_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('programs_program', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), server_default='program',
                                      nullable=False))
        batch_op.add_column(sa.Column('parent_program_id', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_programs_program_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_programs_program_parent_program_id'), ['parent_program_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('programs_program', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_programs_program_parent_program_id'))
        batch_op.drop_index(batch_op.f('ix_programs_program_kind'))
        batch_op.drop_column('parent_program_id')
        batch_op.drop_column('kind')
