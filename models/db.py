"""Engine and session factory shared by api/ and activities/.

One URL configures both drivers: ``sqlite:///file.db`` runs through aiosqlite and
``postgresql+psycopg://…`` through psycopg 3 (which is async-capable itself).
Alembic uses the synchronous form of the same URL.

Every statement is bounded in time (``statement_timeout_ms``, from
``TICKETFLOW_DB_STATEMENT_TIMEOUT_MS``): PostgreSQL's ``statement_timeout`` on each connection,
SQLite's busy timeout (how long a writer waits for the lock). ``Database.check_writable`` is
the health probe: can the database take a write right now?
"""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def sync_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("sqlite+aiosqlite",):
        u = u.set(drivername="sqlite")
    if u.drivername in ("postgresql", "postgres", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def async_url(url: str) -> str:
    u = make_url(sync_url(url))
    if u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).drivername.startswith("sqlite")


def upsert_statement(dialect: str, table: Table):
    """``INSERT … ON CONFLICT`` for the two supported backends."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def json_text_contains(column: Any, needle: str) -> Any:
    """A coarse SQL pre-filter on a JSON column's text (both backends): callers re-check the
    rows it lets through in Python."""
    return sa.cast(column, sa.Text).contains(needle, autoescape=True)


# The longest one statement may run (or, on SQLite, wait for the write lock) unless told otherwise:
# models.settings.Settings.db_statement_timeout_ms has the same default.
DEFAULT_STATEMENT_TIMEOUT_MS = 5_000
# The health probe's own, shorter bound.
HEALTH_TIMEOUT_MS = 1_000


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_conn, _record) -> None:  # pragma: no cover - trivial
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes, no fsync per commit
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _postgres_options(url: str, statement_timeout_ms: int) -> str:
    """libpq ``options`` with the statement timeout, keeping any the URL already sets."""
    given = make_url(url).query.get("options") or ""
    given = " ".join(given) if isinstance(given, tuple) else given
    return f"{given} -c statement_timeout={int(statement_timeout_ms)}".strip()


def create_engine(url: str, statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(async_url(url), connect_args={"timeout": statement_timeout_ms / 1000})
        event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, statement_timeout_ms))
        return engine
    return create_async_engine(
        async_url(url),
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"options": _postgres_options(url, statement_timeout_ms), "connect_timeout": 10},
    )


def _sqlite_write_probe(path: str, timeout_ms: int) -> None:
    """Take SQLite's write lock on a connection of its own (waiting at most ``timeout_ms``) and
    let it go: raises ``sqlite3.OperationalError`` ("database is locked") when another holds it."""
    conn = sqlite3.connect(path, timeout=timeout_ms / 1000, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


class Database:
    """Holds the engine and hands out sessions; one per process."""

    def __init__(self, url: str, statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS) -> None:
        self.url = url
        self.statement_timeout_ms = statement_timeout_ms
        self.engine = create_engine(url, statement_timeout_ms)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    async def check_writable(self, timeout_ms: int = HEALTH_TIMEOUT_MS) -> None:
        """Raise unless the database takes a write within ``timeout_ms`` (SQLite: the write lock
        is free; PostgreSQL: a connection answers and may write, not a read-only standby)."""
        u = make_url(self.url)
        if is_sqlite(self.url):
            if u.database and u.database != ":memory:":
                await asyncio.to_thread(_sqlite_write_probe, u.database, timeout_ms)
                return
        async with asyncio.timeout(timeout_ms / 1000 + 1), self.engine.connect() as conn:
            if not is_sqlite(self.url):
                await conn.execute(sa.text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
                await conn.execute(sa.text("SELECT txid_current()"))  # refused on a read-only standby
            else:
                await conn.execute(sa.text("SELECT 1"))
            await conn.rollback()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
