"""Regions: every query on the ``region`` reference table (code, name, timezone, calendar)."""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Region


async def get(session: AsyncSession, code: str, *, lock: bool = False) -> Region | None:
    """``lock``: the row stays locked until the caller's transaction ends (PostgreSQL; it
    serializes what is published per region — SQLite has one writer anyway)."""
    if not lock:
        return await session.get(Region, code)
    return (await session.exec(select(Region).where(Region.code == code).with_for_update())).first()


async def names(session: AsyncSession, codes: list[str] | None = None) -> list[tuple[str, str]]:
    """(code, name) of every region, or of those of ``codes``, by code."""
    q = select(Region.code, Region.name).order_by(col(Region.code))
    if codes is not None:
        q = q.where(col(Region.code).in_(codes))
    return [(code, name) for code, name in (await session.exec(q)).all()]
