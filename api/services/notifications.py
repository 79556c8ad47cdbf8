"""The caller's in-app inbox and contact details. Every query is scoped to the caller: an
item of someone else — or about a ticket outside the caller's regions — is ``NotFound``."""

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

import store.notifications
from api.errors import NotFound
from api.services.paging import cursor_key
from domain.access import visible_regions
from models.notifications_http import ContactIn, ContactOut, NotificationOut, NotificationPage, ReadAllResult
from models.notifications_tables import NotificationContact
from models.ticket import ActorRef


async def list_notifications(
    session: AsyncSession,
    actor: ActorRef,
    unread_only: bool,
    ticket_id: str | None,
    limit: int,
    cursor: str | None,
) -> NotificationPage:
    """Newest first; keyset pagination on (created_at, id)."""
    rows, next_cursor, unread = await store.notifications.inbox_page(
        session,
        actor.id,
        visible_regions(actor),
        ticket_id,
        unread_only=unread_only,
        limit=limit,
        after=cursor_key(cursor, datetime, int),
    )
    return NotificationPage(
        items=[NotificationOut.model_validate(r) for r in rows], next_cursor=next_cursor, unread_count=unread
    )


async def mark_read(session: AsyncSession, actor: ActorRef, notification_id: int) -> NotificationOut:
    """Idempotent: the first read time is kept."""
    row = await store.notifications.inbox_item(session, actor.id, visible_regions(actor), notification_id)
    if row is None:
        raise NotFound(f"no notification {notification_id} in your inbox")
    if row.read_at is None:
        store.notifications.mark_read(session, row, datetime.now(UTC))
        await session.commit()
    return NotificationOut.model_validate(row)


async def mark_all_read(session: AsyncSession, actor: ActorRef, ticket_id: str | None) -> ReadAllResult:
    marked = await store.notifications.mark_all_read(
        session, actor.id, visible_regions(actor), ticket_id, datetime.now(UTC)
    )
    await session.commit()
    return ReadAllResult(marked=marked)


async def get_contact(session: AsyncSession, actor: ActorRef) -> ContactOut:
    row = await store.notifications.contact(session, actor.id)
    if row is None:
        return ContactOut(actor_id=actor.id)
    return ContactOut(actor_id=actor.id, email=row.email, phone=row.phone, im_user=row.im_user)


async def put_contact(session: AsyncSession, actor: ActorRef, body: ContactIn) -> ContactOut:
    row = await store.notifications.contact(session, actor.id) or NotificationContact(
        actor_id=actor.id, updated_at=datetime.now(UTC)
    )
    row.email, row.phone, row.im_user = body.email, body.phone, body.im_user
    row.updated_at = datetime.now(UTC)
    store.notifications.save_contact(session, row)
    await session.commit()
    return ContactOut(actor_id=actor.id, **body.model_dump())
