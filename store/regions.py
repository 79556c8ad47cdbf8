"""Regions: every query on the ``region`` reference table (code, name, timezone, calendar), and
the business calendar a ticket of the region is opened with (``calendar_for``)."""

from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.calendar import freeze_holidays
from models.calendar import BusinessCalendar
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


def calendar_of(region: Region) -> BusinessCalendar:
    """The region's business calendar as stored; none stored: Mon–Fri 09:00–18:00 in the region's
    timezone."""
    if region.calendar:
        return BusinessCalendar.model_validate(region.calendar)
    return BusinessCalendar.weekly(region.timezone, "09:00-18:00", "mon-fri")


def calendar_for(region: Region) -> BusinessCalendar:
    """The region's calendar for a new ticket: its holidays frozen for this year and the next so
    the ticket's deadlines never change on replay (even after a ``holidays`` upgrade)."""
    year = datetime.now(UTC).year
    return freeze_holidays(calendar_of(region), year, year + 1)
