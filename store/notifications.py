"""Notifications: every query on ``notification_outbox`` (one row per message, channel and
recipient, sent once: ``claim`` leases a row to one sender), ``notification_inbox`` (the in-app
inbox, keyset-paged, newest first) and ``notification_contact`` (where a person is reached).

Routing and rendering are ``domain/notify_rules.py`` and ``activities/notify.py``'s; the inbox
is always read for one person within their regions.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import Database, upsert_statement
from models.notifications_tables import DeliveryStatus, NotificationContact, NotificationInbox, NotificationOutbox
from store import keyset

# --- the outbox ---


async def write_outbox(db: Database, rows: list[dict[str, Any]]) -> list[NotificationOutbox]:
    """Insert the rows that are not there yet; answer all of them as stored (first write wins)."""
    if not rows:
        return []
    table = NotificationOutbox.__table__
    insert = (
        upsert_statement(db.engine.dialect.name, table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
    )
    async with db.engine.begin() as conn:
        await conn.execute(insert)
    keys = [r["dedup_key"] for r in rows]
    async with db.session() as s:
        q = select(NotificationOutbox).where(col(NotificationOutbox.dedup_key).in_(keys))
        stored = {r.dedup_key: r for r in await s.exec(q)}
    return [stored[k] for k in keys]


async def claim(db: Database, row_id: int | None, lease_s: float) -> int | None:
    """Take the row for one send; the new attempt count, or None if it is sent, failed or held."""
    now = datetime.now(UTC)
    t = NotificationOutbox
    stmt = (
        update(t)
        .where(
            and_(
                col(t.id) == row_id,
                col(t.status) == DeliveryStatus.PENDING.value,
                or_(col(t.claimed_until).is_(None), col(t.claimed_until) < now),
            )
        )
        .values(claimed_until=now + timedelta(seconds=lease_s), attempts=col(t.attempts) + 1, updated_at=now)
        .returning(col(t.attempts))
    )
    async with db.engine.begin() as conn:
        got = (await conn.execute(stmt)).first()
    return None if got is None else int(got[0])


async def finish(db: Database, row_id: int | None, **values: Any) -> None:
    """Record how a send ended (status, last_error, sent_at…) and release the row."""
    values["updated_at"] = datetime.now(UTC)
    async with db.engine.begin() as conn:
        await conn.execute(update(NotificationOutbox).where(col(NotificationOutbox.id) == row_id).values(**values))


async def outbox_row(db: Database, row_id: int | None) -> NotificationOutbox | None:
    async with db.session() as s:
        return await s.get(NotificationOutbox, row_id)


# --- contacts ---


async def contacts_of(session: AsyncSession, actor_ids: list[str]) -> dict[str, NotificationContact]:
    if not actor_ids:
        return {}
    q = select(NotificationContact).where(col(NotificationContact.actor_id).in_(actor_ids))
    return {c.actor_id: c for c in await session.exec(q)}


async def contact(session: AsyncSession, actor_id: str) -> NotificationContact | None:
    return await session.get(NotificationContact, actor_id)


def save_contact(session: AsyncSession, row: NotificationContact) -> None:
    """Written with the caller's commit."""
    session.add(row)


# --- the inbox ---


async def deliver_to_inbox(db: Database, values: dict[str, Any]) -> None:
    """One inbox row per ``dedup_key``: a second delivery of the same message adds nothing."""
    insert = (
        upsert_statement(db.engine.dialect.name, NotificationInbox.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedup_key"])
    )
    async with db.engine.begin() as conn:
        await conn.execute(insert)


def _mine(actor_id: str, regions: list[str] | None, ticket_id: str | None = None) -> list[Any]:
    """The person's items, about tickets of ``regions`` (None: every region), of one ticket or all."""
    conditions: list[Any] = [col(NotificationInbox.actor_id) == actor_id]
    if regions is not None:
        conditions.append(col(NotificationInbox.region).in_(regions))
    if ticket_id is not None:
        conditions.append(col(NotificationInbox.ticket_id) == ticket_id)
    return conditions


async def inbox_page(
    session: AsyncSession,
    actor_id: str,
    regions: list[str] | None,
    ticket_id: str | None,
    *,
    unread_only: bool,
    limit: int,
    after: keyset.Key | None,
) -> tuple[list[NotificationInbox], str | None, int]:
    """Newest first, keyset-paged on (created_at, id); also how many are unread (all pages)."""
    conditions = _mine(actor_id, regions, ticket_id)
    unread = await session.exec(
        select(func.count()).select_from(NotificationInbox).where(*conditions, col(NotificationInbox.read_at).is_(None))
    )
    if unread_only:
        conditions.append(col(NotificationInbox.read_at).is_(None))
    if after is not None:
        conditions.append(keyset.before([col(NotificationInbox.created_at), col(NotificationInbox.id)], after))
    q = (
        select(NotificationInbox)
        .where(*conditions)
        .order_by(col(NotificationInbox.created_at).desc(), col(NotificationInbox.id).desc())
        .limit(limit + 1)
    )
    rows, cursor = keyset.page(list(await session.exec(q)), limit, lambda r: (r.created_at, r.id))
    return rows, cursor, unread.one()


async def inbox_item(
    session: AsyncSession, actor_id: str, regions: list[str] | None, notification_id: int
) -> NotificationInbox | None:
    q = select(NotificationInbox).where(col(NotificationInbox.id) == notification_id, *_mine(actor_id, regions))
    return (await session.exec(q)).first()


def mark_read(session: AsyncSession, row: NotificationInbox, at: datetime) -> None:
    """Written with the caller's commit."""
    row.read_at = at
    session.add(row)


async def mark_all_read(
    session: AsyncSession, actor_id: str, regions: list[str] | None, ticket_id: str | None, at: datetime
) -> int:
    """Every unread item (of one ticket, or all) read at ``at``; how many (the caller commits)."""
    stmt = (
        update(NotificationInbox)
        .where(*_mine(actor_id, regions, ticket_id), col(NotificationInbox.read_at).is_(None))
        .values(read_at=at)
    )
    result = await session.exec(stmt)
    return result.rowcount
