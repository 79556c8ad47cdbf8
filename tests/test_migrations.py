"""The Alembic migrations build exactly the schema the models declare (no drift either way)."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import models.tables  # noqa: F401 — registers every table on SQLModel.metadata
from models.db import sync_url


def test_the_migrated_database_matches_the_models(database_url: str):
    engine = sa.create_engine(sync_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []
