"""Subscriptions: every query on ``subscription`` and its outbox ``webhook_delivery``.

``record`` is called by ``store.tickets.record_changes`` inside the projection's transaction:
the ticket events a subscriber wants become delivery rows in the same commit as the events,
so none is lost or told twice, and the workflow does no extra round trip. Each row is scoped
when it is written: only subscriptions whose owner's regions hold the ticket, and only the
form values the owner's roles may see (``domain.forms.visible_values``). The delivery loop
(``activities/webhooks.py``) takes the rows from there: ``busy_subscriptions``, ``due``,
``claim``, ``finish``, ``failed_streak``/``succeeded``.
"""

import functools
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain import subscriptions as rules
from domain.forms import visible_values
from models.db import upsert_statement
from models.subscription_tables import Subscription, WebhookDelivery
from models.subscriptions import DeliveryStatus, SubscriptionState
from models.tables import Actor, Template
from models.template import TemplateSpec
from models.ticket import TicketEvent, TicketState
from store import keyset

log = logging.getLogger(__name__)

SUB = cast(sa.Table, Subscription.__table__)  # type: ignore[attr-defined]
DELIVERY = cast(sa.Table, WebhookDelivery.__table__)  # type: ignore[attr-defined]
OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)  # not yet delivered nor given up
RAW_BODY = "__raw__"  # a status-sync body rendered from the source's template: sent as is


def new_id() -> str:
    return f"sub_{secrets.token_hex(12)}"


# --- written with the projection ---


async def record(conn: AsyncConnection, state: TicketState, events: Sequence[TicketEvent]) -> None:
    """The delivery rows for ``events``, in the caller's transaction; a repeat adds nothing
    (unique key, ``ON CONFLICT DO NOTHING``). A database error propagates (the projection
    retries); a fault of this code is logged and the read model goes on.

    The subscribers are read in the caller's transaction; only the write, when there is one,
    takes a savepoint (most changes of most tickets have no subscriber: two round trips fewer
    per projection write than a savepoint around the whole)."""
    named = [(e, n.value) for e in events for n in rules.events_of(e)]
    if not named:
        return
    try:
        rows = await _rows(conn, state, named)
        if rows:
            async with conn.begin_nested():
                await conn.execute(_insert_deliveries(conn.dialect.name), rows)
    except DBAPIError:
        raise
    except Exception:  # noqa: BLE001 - see above
        log.exception("webhook deliveries of %s (events %s) not written", state.ticket_id, [e.seq for e in events])


@functools.cache
def _insert_deliveries(dialect: str) -> sa.Insert:
    """Built once: executed with the rows as parameters (one multi-row statement)."""
    stmt: sa.Insert = upsert_statement(dialect, DELIVERY).on_conflict_do_nothing(
        index_elements=["subscription_id", "ticket_id", "seq", "event"]
    )
    return stmt


async def _rows(
    conn: AsyncConnection, state: TicketState, named: list[tuple[TicketEvent, str]]
) -> list[dict[str, Any]]:
    actor = cast(sa.Table, Actor.__table__)  # type: ignore[attr-defined]
    q = (
        sa.select(SUB, actor.c.roles.label("owner_roles"), actor.c.regions.label("owner_regions"))
        .join(actor, actor.c.id == SUB.c.owner_id)
        .where(actor.c.active)
    )
    subs = (await conn.execute(q)).all()
    names = {n for _, n in named}
    wanted = [
        s
        for s in subs
        if names & set(s.events)
        and (s.source is None or state.created_by == s.owner_id)  # a source's status sync: its own tickets
        and rules.wants(
            {"regions": s.regions, "ticket_types": s.ticket_types, "sources": s.sources},
            s.owner_regions or [],
            state.region,
            state.ticket_type,
            state.channel,
        )
    ]
    if not wanted:
        return []
    spec = await _spec(conn, state)
    now = datetime.now(UTC)
    ticket = _ticket_view(state)
    rows = []
    for s in wanted:
        fields = visible_values(spec, state.fields, s.owner_roles or []) if spec else {}
        for event, name in named:
            if name not in s.events:
                continue
            eid = rules.event_id(s.id, state.ticket_id, event.seq, name)
            payload = rules.body(eid, name, event, ticket, fields, event.at)
            status, error = DeliveryStatus.PENDING.value, None
            template = (s.body_templates or {}).get(name)
            if template:
                try:
                    payload = {RAW_BODY: rules.render_body(template, payload)}
                except Exception as exc:  # noqa: BLE001 - the source's template: logged on its row, never sent
                    status, error = DeliveryStatus.DEAD.value, f"body template failed: {type(exc).__name__}: {exc}"
            rows.append(
                {
                    "subscription_id": s.id,
                    "event_id": eid,
                    "ticket_id": state.ticket_id,
                    "seq": event.seq,
                    "event": name,
                    "body": payload,
                    "status": status,
                    "last_error": error,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    return rows


def _ticket_view(state: TicketState) -> dict[str, Any]:
    return {
        "id": state.ticket_id,
        "ticket_type": state.ticket_type,
        "region": state.region,
        "priority": state.priority.value,
        "status": state.status.value,
        "title": state.title,
        "channel": state.channel,
        "external_ref": state.external_ref,
        "assignee": state.assignee,
        "resolution": state.resolution,
        "customer_id": state.customer_id,
        "asset_id": state.asset_id,
    }


async def _spec(conn: AsyncConnection, state: TicketState) -> TemplateSpec | None:
    t = cast(sa.Table, Template.__table__)  # type: ignore[attr-defined]
    q = sa.select(t.c.spec).where(t.c.key == (state.template_key or state.ticket_type))
    q = q.where(t.c.version == state.template_version) if state.template_version else q
    got = (await conn.execute(q.order_by(t.c.version.desc()).limit(1))).first()
    return TemplateSpec.model_validate(got[0]) if got else None


# --- the delivery loop ---


async def busy_subscriptions(conn: AsyncConnection, now: datetime) -> list[str]:
    """Active subscriptions with a delivery due now."""
    q = (
        sa.select(SUB.c.id)
        .where(
            SUB.c.state == SubscriptionState.ACTIVE.value,
            sa.exists().where(
                DELIVERY.c.subscription_id == SUB.c.id,
                DELIVERY.c.status.in_(OPEN),
                DELIVERY.c.next_attempt_at <= now,
            ),
        )
        .order_by(SUB.c.id)
    )
    return [r[0] for r in (await conn.execute(q)).all()]


async def due(conn: AsyncConnection, subscription_id: str, now: datetime, limit: int) -> list[WebhookDelivery]:
    """Due rows of one subscription, each the first open one of its ticket (a ticket's events
    reach a subscriber in seq order), not held by another sender."""
    d, e = DELIVERY, DELIVERY.alias("earlier")
    earlier = (
        sa.select(sa.literal(1))
        .select_from(e)
        .where(
            e.c.subscription_id == d.c.subscription_id,
            e.c.ticket_id == d.c.ticket_id,
            e.c.status.in_(OPEN),
            sa.or_(e.c.seq < d.c.seq, sa.and_(e.c.seq == d.c.seq, e.c.id < d.c.id)),
        )
    )
    q = (
        sa.select(d)
        .where(
            d.c.subscription_id == subscription_id,
            d.c.status.in_(OPEN),
            d.c.next_attempt_at <= now,
            sa.or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
            ~earlier.exists(),
        )
        .order_by(d.c.next_attempt_at, d.c.id)
        .limit(limit)
    )
    return [WebhookDelivery.model_validate(dict(r._mapping)) for r in (await conn.execute(q)).all()]


async def subscription(conn: AsyncConnection, subscription_id: str) -> Subscription | None:
    got = (await conn.execute(sa.select(SUB).where(SUB.c.id == subscription_id))).first()
    return None if got is None else Subscription.model_validate(dict(got._mapping))


async def claim(conn: AsyncConnection, row_id: int | None, now: datetime, lease_s: float) -> int | None:
    """Take a row for one attempt (a conditional update: two senders never both have it); the
    new attempt count, or None."""
    stmt = (
        sa.update(DELIVERY)
        .where(
            DELIVERY.c.id == row_id,
            DELIVERY.c.status.in_(OPEN),
            sa.or_(DELIVERY.c.claimed_until.is_(None), DELIVERY.c.claimed_until < now),
        )
        .values(claimed_until=now + timedelta(seconds=lease_s), attempts=DELIVERY.c.attempts + 1)
        .returning(DELIVERY.c.attempts)
    )
    got = (await conn.execute(stmt)).first()
    return None if got is None else int(got[0])


async def finish(conn: AsyncConnection, row_id: int | None, **values: Any) -> None:
    values.setdefault("claimed_until", None)
    await conn.execute(sa.update(DELIVERY).where(DELIVERY.c.id == row_id).values(**values))


async def succeeded(conn: AsyncConnection, subscription_id: str) -> None:
    await conn.execute(sa.update(SUB).where(SUB.c.id == subscription_id).values(failure_streak=0))


async def failed_streak(conn: AsyncConnection, subscription_id: str, pause_after: int, now: datetime) -> bool:
    """Count a failure; True when this one paused the subscription (the caller tells its owner)."""
    streak = (
        await conn.execute(
            sa.update(SUB)
            .where(SUB.c.id == subscription_id)
            .values(failure_streak=SUB.c.failure_streak + 1)
            .returning(SUB.c.failure_streak, SUB.c.state)
        )
    ).first()
    if streak is None or streak[0] < pause_after or streak[1] != SubscriptionState.ACTIVE.value:
        return False
    paused = await conn.execute(
        sa.update(SUB)
        .where(SUB.c.id == subscription_id, SUB.c.state == SubscriptionState.ACTIVE.value)
        .values(state=SubscriptionState.PAUSED.value, paused_at=now)
    )
    return bool(paused.rowcount)


# --- the API's ---


def add(session: AsyncSession, row: Subscription) -> None:
    session.add(row)


async def get(session: AsyncSession, subscription_id: str) -> Subscription | None:
    return await session.get(Subscription, subscription_id)


async def listed(session: AsyncSession, owner_id: str | None) -> list[Subscription]:
    """Every subscription (``owner_id`` None) or one owner's, oldest first."""
    q = select(Subscription).order_by(col(Subscription.created_at), col(Subscription.id))
    if owner_id is not None:
        q = q.where(Subscription.owner_id == owner_id)
    return list(await session.exec(q))


async def by_source(session: AsyncSession, source: str) -> Subscription | None:
    return (await session.exec(select(Subscription).where(Subscription.source == source))).first()


async def delete(session: AsyncSession, subscription_id: str) -> None:
    """The subscription and its delivery log (with the caller's commit)."""
    await session.exec(sa.delete(DELIVERY).where(DELIVERY.c.subscription_id == subscription_id))
    await session.exec(sa.delete(SUB).where(SUB.c.id == subscription_id))


async def deliveries(
    session: AsyncSession, subscription_id: str, key: keyset.Key | None, limit: int
) -> tuple[list[WebhookDelivery], str | None]:
    """Newest first, keyset by id."""
    q = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if key is not None:
        q = q.where(keyset.before([col(WebhookDelivery.id)], key))
    rows = list(await session.exec(q.order_by(col(WebhookDelivery.id).desc()).limit(limit + 1)))
    return keyset.page(rows, limit, lambda r: (r.id or 0,))


async def delivery(session: AsyncSession, subscription_id: str, delivery_id: int) -> WebhookDelivery | None:
    row = await session.get(WebhookDelivery, delivery_id)
    return row if row is not None and row.subscription_id == subscription_id else None
