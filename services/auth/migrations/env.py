from alembic import context
from sqlmodel import SQLModel

import services.auth.store  # noqa: F401  (registers the tables on SQLModel.metadata)
from services.common.db import run_alembic_env

run_alembic_env(context, SQLModel.metadata, "auth")
