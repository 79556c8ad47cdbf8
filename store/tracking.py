"""Tracking links: every query on ``tracking_token``, and the machine account the tracking page
acts as. Nothing here commits: the caller does (``api/services/tracking.py``)."""

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import upsert_statement
from models.tables import Actor
from models.tracking_tables import TrackingToken

LISTED = 200  # links of one ticket listed at most (newest first)


def add(session: AsyncSession, row: TrackingToken) -> None:
    session.add(row)


async def by_hash(session: AsyncSession, token_hash: str) -> TrackingToken | None:
    return (await session.exec(select(TrackingToken).where(TrackingToken.token_hash == token_hash))).first()


async def get(session: AsyncSession, ticket_id: str, link_id: str) -> TrackingToken | None:
    """The link ``link_id`` if it belongs to ``ticket_id``."""
    row = await session.get(TrackingToken, link_id)
    return row if row is not None and row.ticket_id == ticket_id else None


async def of_ticket(session: AsyncSession, ticket_id: str) -> list[TrackingToken]:
    q = (
        select(TrackingToken)
        .where(TrackingToken.ticket_id == ticket_id)
        .order_by(col(TrackingToken.created_at).desc(), col(TrackingToken.id).desc())
        .limit(LISTED)
    )
    return list((await session.exec(q)).all())


def revoke(session: AsyncSession, row: TrackingToken, now: datetime) -> None:
    """Revoked once: a second revocation keeps the first time."""
    if row.revoked_at is None:
        row.revoked_at = now
        session.add(row)


async def machine_account(session: AsyncSession, actor_id: str) -> Actor | None:
    return await session.get(Actor, actor_id, populate_existing=True)


async def add_machine_account(session: AsyncSession, actor_id: str, name: str) -> None:
    """Insert the tracking page's machine account (role ``channel``, every region) unless it is
    there: a concurrent first use inserts it once."""
    dialect = (await session.connection()).dialect.name
    values = {
        "id": actor_id,
        "name": name,
        "roles": ["channel"],
        "regions": ["*"],
        "active": True,
        "groups": [],
        "skills": {},
        "capacity": 0,
        "seniority": 1,
        "out_of_office": [],
        "features": {},
    }
    insert = upsert_statement(dialect, Actor.__table__).values(**values)  # type: ignore[attr-defined]
    await session.exec(insert.on_conflict_do_nothing(index_elements=["id"]))
