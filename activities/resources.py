"""Process-wide resources activities use (the database), installed by the worker at start.

Tests install their own with ``use_database``.
"""

from models.db import Database

_db: Database | None = None


def use_database(db: Database | None) -> None:
    global _db
    _db = db


def database() -> Database:
    if _db is None:
        raise RuntimeError("no database installed: the worker calls activities.resources.use_database()")
    return _db
