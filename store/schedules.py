"""Schedules: every query on ``maintenance_schedule``, the rows of the Temporal Schedules the API
manages (maintenance plans and follow-ups). Rules are ``api/services/schedules.py``'s and
``activities/schedules.py``'s."""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import upsert_statement
from models.schedule_tables import MaintenanceSchedule
from store import keyset


async def get(session: AsyncSession, schedule_id: str) -> MaintenanceSchedule | None:
    return await session.get(MaintenanceSchedule, schedule_id)


def add(session: AsyncSession, row: MaintenanceSchedule) -> None:
    """A new schedule, written with the caller's commit (the id is the primary key)."""
    session.add(row)


async def add_once(session: AsyncSession, row: MaintenanceSchedule) -> bool:
    """Insert unless a row with this id exists (the caller commits); whether it was inserted."""
    dialect = session.get_bind().dialect.name
    values = {c.name: getattr(row, c.name) for c in MaintenanceSchedule.__table__.columns}  # type: ignore[attr-defined]
    stmt = upsert_statement(dialect, MaintenanceSchedule.__table__).values(**values).on_conflict_do_nothing()  # type: ignore[attr-defined]
    result = await session.exec(stmt)
    return bool(result.rowcount)


async def set_state(session: AsyncSession, schedule_id: str, state: str, at: datetime) -> None:
    """The row's new state (the caller commits)."""
    stmt = (
        sa.update(MaintenanceSchedule)
        .where(col(MaintenanceSchedule.id) == schedule_id)
        .values(state=state, updated_at=at)
    )
    await session.exec(stmt)


async def forget(session: AsyncSession, schedule_id: str) -> None:
    """Delete the row (its Temporal schedule was never created; the caller commits)."""
    await session.exec(sa.delete(MaintenanceSchedule).where(col(MaintenanceSchedule.id) == schedule_id))


async def page(
    session: AsyncSession,
    *,
    regions: list[str] | None,
    kind: str | None = None,
    state: str | None = None,
    asset_id: str | None = None,
    source_ticket: str | None = None,
    include_deleted: bool = False,
    limit: int,
    after: keyset.Key | None = None,
) -> tuple[list[MaintenanceSchedule], str | None]:
    """Newest first, keyset-paged on (created_at, id); ``regions`` None: every region."""
    q = select(MaintenanceSchedule)
    if regions is not None:
        q = q.where(col(MaintenanceSchedule.region).in_(regions))
    if kind is not None:
        q = q.where(col(MaintenanceSchedule.kind) == kind)
    if state is not None:
        q = q.where(col(MaintenanceSchedule.state) == state)
    elif not include_deleted:
        q = q.where(col(MaintenanceSchedule.state) != "deleted")
    if asset_id is not None:
        q = q.where(col(MaintenanceSchedule.asset_id) == asset_id)
    if source_ticket is not None:
        q = q.where(col(MaintenanceSchedule.source_ticket) == source_ticket)
    if after is not None:
        q = q.where(keyset.before([col(MaintenanceSchedule.created_at), col(MaintenanceSchedule.id)], after))
    q = q.order_by(col(MaintenanceSchedule.created_at).desc(), col(MaintenanceSchedule.id).desc()).limit(limit + 1)
    return keyset.page(list((await session.exec(q)).all()), limit, lambda s: (s.created_at, s.id))
