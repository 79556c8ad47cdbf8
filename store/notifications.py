"""Notifications: every query on ``notification_outbox`` (one row per message, channel and
recipient, sent once: ``due`` finds a channel's rows to send, ``claim`` leases a row to one
sender), ``notification_inbox`` (the in-app inbox, keyset-paged, newest first) and
``notification_contact`` (where a person is reached).

Routing and rendering are ``domain/notify_rules.py`` and ``activities/notify.py``'s; the inbox
is always read for one person within their regions.
"""

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import and_, func, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import Database, upsert_statement
from models.notifications_tables import DeliveryStatus, NotificationContact, NotificationInbox, NotificationOutbox
from store import keyset

OUTBOX = cast(sa.Table, NotificationOutbox.__table__)  # type: ignore[attr-defined]
INBOX = cast(sa.Table, NotificationInbox.__table__)  # type: ignore[attr-defined]

# --- the outbox ---


async def write_outbox(db: Database, rows: list[dict[str, Any]]) -> list[NotificationOutbox]:
    """Insert the rows that are not there yet; answer all of them as stored (first write wins)."""
    if not rows:
        return []
    insert = (
        upsert_statement(db.engine.dialect.name, OUTBOX)
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


async def due(
    conn: AsyncConnection, channel: str, now: datetime, limit: int, skip: Collection[int] = ()
) -> list[NotificationOutbox]:
    """Rows of ``channel`` to send now: pending, due, held by no sender (and not in ``skip``,
    the ones this lane is sending), oldest due first."""
    o = OUTBOX.c
    q = sa.select(OUTBOX).where(
        o.channel == channel,
        o.status == DeliveryStatus.PENDING.value,
        o.next_attempt_at <= now,
        or_(o.claimed_until.is_(None), o.claimed_until < now),
    )
    if skip:
        q = q.where(o.id.not_in(list(skip)))
    q = q.order_by(o.next_attempt_at, o.id).limit(limit)
    return [NotificationOutbox.model_validate(dict(r._mapping)) for r in (await conn.execute(q)).all()]


async def next_due(conn: AsyncConnection, channel: str, now: datetime) -> datetime | None:
    """When the next of ``channel``'s pending rows that is not due yet becomes due (its backoff ends)."""
    o = OUTBOX.c
    q = sa.select(func.min(o.next_attempt_at)).where(
        o.channel == channel, o.status == DeliveryStatus.PENDING.value, o.next_attempt_at > now
    )
    found: datetime | None = (await conn.execute(q)).scalar()
    return found


async def claim(conn: AsyncConnection, row_id: int | None, now: datetime, lease_s: float) -> int | None:
    """Take the row for one send; the new attempt count, or None if it is sent, failed or held."""
    o = OUTBOX.c
    stmt = (
        update(OUTBOX)
        .where(
            and_(
                o.id == row_id,
                o.status == DeliveryStatus.PENDING.value,
                or_(o.claimed_until.is_(None), o.claimed_until < now),
            )
        )
        .values(claimed_until=now + timedelta(seconds=lease_s), attempts=o.attempts + 1, updated_at=now)
        .returning(o.attempts)
    )
    got = (await conn.execute(stmt)).first()
    return None if got is None else int(got[0])


async def finish(conn: AsyncConnection, row_id: int | None, **values: Any) -> None:
    """Record how a send ended (status, last_error, sent_at, next_attempt_at…) and release the row."""
    values.setdefault("claimed_until", None)
    values.setdefault("updated_at", datetime.now(UTC))
    await conn.execute(update(OUTBOX).where(OUTBOX.c.id == row_id).values(**values))


async def mark_sent(conn: AsyncConnection, row_id: int | None, now: datetime) -> bool:
    """A row delivered without a claim (the inbox, written idempotently): sent, if it was not yet."""
    o = OUTBOX.c
    stmt = (
        update(OUTBOX)
        .where(o.id == row_id, o.status == DeliveryStatus.PENDING.value)
        .values(
            status=DeliveryStatus.SENT.value,
            attempts=o.attempts + 1,
            sent_at=now,
            last_error=None,
            claimed_until=None,
            updated_at=now,
        )
    )
    return bool((await conn.execute(stmt)).rowcount)


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
        upsert_statement(db.engine.dialect.name, INBOX)
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
