"""The caller's in-app inbox and contact details. Every query is scoped to the caller: an
item of someone else — or about a ticket outside the caller's regions — is ``NotFound``."""

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.bounds import MAX_INT32
from api.errors import FieldInvalid, NotFound
from domain.access import visible_regions
from models.notifications import (
    ContactIn,
    ContactOut,
    NotificationContact,
    NotificationInbox,
    NotificationOut,
    NotificationPage,
    ReadAllResult,
)
from models.ticket import ActorRef


def _mine(actor: ActorRef, ticket_id: str | None = None) -> list[Any]:
    conditions: list[Any] = [col(NotificationInbox.actor_id) == actor.id]
    regions = visible_regions(actor)
    if regions is not None:
        conditions.append(col(NotificationInbox.region).in_(regions))
    if ticket_id is not None:
        conditions.append(col(NotificationInbox.ticket_id) == ticket_id)
    return conditions


def _encode_cursor(row: NotificationInbox) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        created, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        at, row_id = datetime.fromisoformat(created), int(row_id)
        if not 0 <= row_id <= MAX_INT32:
            raise ValueError("row id out of range")
        return at, row_id
    except (ValueError, TypeError) as exc:
        raise FieldInvalid("cursor", "malformed cursor: pass back next_cursor unchanged", location="query") from exc


async def list_notifications(
    session: AsyncSession,
    actor: ActorRef,
    unread_only: bool,
    ticket_id: str | None,
    limit: int,
    cursor: str | None,
) -> NotificationPage:
    """Newest first; keyset pagination on (created_at, id)."""
    conditions = _mine(actor, ticket_id)
    unread = await session.exec(
        select(func.count()).select_from(NotificationInbox).where(*conditions, col(NotificationInbox.read_at).is_(None))
    )
    if unread_only:
        conditions.append(col(NotificationInbox.read_at).is_(None))
    if cursor:
        at, last_id = _decode_cursor(cursor)
        conditions.append(
            or_(
                col(NotificationInbox.created_at) < at,
                and_(col(NotificationInbox.created_at) == at, col(NotificationInbox.id) < last_id),
            )
        )
    q = (
        select(NotificationInbox)
        .where(*conditions)
        .order_by(col(NotificationInbox.created_at).desc(), col(NotificationInbox.id).desc())
        .limit(limit + 1)
    )
    rows = list(await session.exec(q))
    more = len(rows) > limit
    rows = rows[:limit]
    return NotificationPage(
        items=[NotificationOut.model_validate(r) for r in rows],
        next_cursor=_encode_cursor(rows[-1]) if more else None,
        unread_count=unread.one(),
    )


async def mark_read(session: AsyncSession, actor: ActorRef, notification_id: int) -> NotificationOut:
    """Idempotent: the first read time is kept."""
    q = select(NotificationInbox).where(col(NotificationInbox.id) == notification_id, *_mine(actor))
    row = (await session.exec(q)).first()
    if row is None:
        raise NotFound(f"no notification {notification_id} in your inbox")
    if row.read_at is None:
        row.read_at = datetime.now(UTC)
        session.add(row)
        await session.commit()
        await session.refresh(row)
    return NotificationOut.model_validate(row)


async def mark_all_read(session: AsyncSession, actor: ActorRef, ticket_id: str | None) -> ReadAllResult:
    stmt = (
        update(NotificationInbox)
        .where(*_mine(actor, ticket_id), col(NotificationInbox.read_at).is_(None))
        .values(read_at=datetime.now(UTC))
    )
    result = await session.exec(stmt)
    await session.commit()
    return ReadAllResult(marked=result.rowcount)


async def get_contact(session: AsyncSession, actor: ActorRef) -> ContactOut:
    row = await session.get(NotificationContact, actor.id)
    if row is None:
        return ContactOut(actor_id=actor.id)
    return ContactOut(actor_id=actor.id, email=row.email, phone=row.phone, im_user=row.im_user)


async def put_contact(session: AsyncSession, actor: ActorRef, body: ContactIn) -> ContactOut:
    row = await session.get(NotificationContact, actor.id) or NotificationContact(
        actor_id=actor.id, updated_at=datetime.now(UTC)
    )
    row.email, row.phone, row.im_user = body.email, body.phone, body.im_user
    row.updated_at = datetime.now(UTC)
    session.add(row)
    await session.commit()
    return ContactOut(actor_id=actor.id, **body.model_dump())
