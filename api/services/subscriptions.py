"""Subscriptions to ticket events (docs/integrations.md, "Subscriptions and webhooks").

Who: an admin, or a channel (machine) account — an integration subscribing with its own key.
The caller owns the subscription: its regions and roles scope every delivery (written at
enqueue time by ``store/subscriptions.py``). An admin sees every subscription; anyone else
only their own (another's is a 404). Every change leaves an audit row; the secret never does.
"""

import secrets
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from api.errors import Conflict, FieldInvalid, Forbidden, NotFound
from api.services import audit
from api.services.paging import cursor_key
from domain import subscriptions as rules
from domain.access import visible_regions
from domain.roles import ADMIN, is_machine
from models.integration_tables import IntegrationSource
from models.integrations import StatusSync
from models.settings import Settings
from models.subscription_tables import Subscription, WebhookDelivery
from models.subscriptions import (
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    SubscriptionCreate,
    SubscriptionFilters,
    SubscriptionOut,
    SubscriptionState,
)
from models.ticket import ActorRef
from store import subscriptions as store
from store.regions import names as region_names

MAX_PER_OWNER = 50


def may_subscribe(actor: ActorRef) -> bool:
    return ADMIN in actor.roles or is_machine(actor.roles)


def out(row: Subscription, secret: str | None = None) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        owner_id=row.owner_id,
        url=row.url,
        events=list(row.events),
        filters=SubscriptionFilters(regions=row.regions, ticket_types=row.ticket_types, sources=row.sources),
        state=SubscriptionState(row.state),
        failure_streak=row.failure_streak,
        source=row.source,
        created_at=row.created_at,
        paused_at=row.paused_at,
        secret=secret,
    )


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


async def create(
    session: AsyncSession, settings: Settings, actor: ActorRef, body: SubscriptionCreate
) -> SubscriptionOut:
    if not may_subscribe(actor):
        raise Forbidden("only an admin or an integration's machine account may subscribe")
    problem = rules.url_problem(body.url, settings.environment == "development")
    if problem:
        raise FieldInvalid("url", problem)
    mine = visible_regions(actor)
    known = {code for code, _ in await region_names(session)}
    for region in body.filters.regions:
        if region not in known or (mine is not None and region not in mine):
            raise FieldInvalid("filters.regions", f"unknown region or outside yours: {region!r}")
    if len(await store.listed(session, actor.id)) >= MAX_PER_OWNER:
        raise Conflict(f"at most {MAX_PER_OWNER} subscriptions per owner")
    secret = body.secret or secrets.token_urlsafe(32)
    row = Subscription(
        id=store.new_id(),
        owner_id=actor.id,
        url=body.url,
        events=list(dict.fromkeys(e.value for e in body.events)),
        regions=body.filters.regions,
        ticket_types=body.filters.ticket_types,
        sources=body.filters.sources,
        secret=secret,
        created_at=_now(),
    )
    store.add(session, row)
    audit.record(session, actor, "subscription.create", "subscription", row.id, after=_audited(row))
    await session.commit()
    return out(row, secret=secret)


async def visible(session: AsyncSession, actor: ActorRef, subscription_id: str) -> Subscription:
    row = await store.get(session, subscription_id)
    if row is None or not (ADMIN in actor.roles or row.owner_id == actor.id):
        raise NotFound(f"subscription {subscription_id} not found")
    return row


async def listed(session: AsyncSession, actor: ActorRef) -> list[SubscriptionOut]:
    if not may_subscribe(actor):
        raise Forbidden("only an admin or an integration's machine account has subscriptions")
    rows = await store.listed(session, None if ADMIN in actor.roles else actor.id)
    return [out(r) for r in rows]


async def delete(session: AsyncSession, actor: ActorRef, subscription_id: str) -> None:
    row = await visible(session, actor, subscription_id)
    before = _audited(row)
    await store.delete(session, row.id)
    audit.record(session, actor, "subscription.delete", "subscription", subscription_id, before=before)
    await session.commit()


async def resume(session: AsyncSession, actor: ActorRef, subscription_id: str) -> SubscriptionOut:
    row = await visible(session, actor, subscription_id)
    if row.state != SubscriptionState.ACTIVE.value:
        row.state, row.failure_streak, row.paused_at = SubscriptionState.ACTIVE.value, 0, None
        session.add(row)
        audit.record(session, actor, "subscription.resume", "subscription", row.id, after={"state": row.state})
        await session.commit()
    return out(row)


async def deliveries(
    session: AsyncSession, actor: ActorRef, subscription_id: str, cursor: str | None, limit: int
) -> DeliveryPage:
    row = await visible(session, actor, subscription_id)
    rows, next_cursor = await store.deliveries(session, row.id, cursor_key(cursor, int), limit)
    return DeliveryPage(items=[delivery_out(r) for r in rows], next_cursor=next_cursor)


async def redeliver(session: AsyncSession, actor: ActorRef, subscription_id: str, delivery_id: int) -> DeliveryOut:
    """Send a delivery again (same event id, so a receiver that had it ignores it): due now."""
    row = await visible(session, actor, subscription_id)
    d = await store.delivery(session, row.id, delivery_id)
    if d is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if d.status in (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value):
        raise Conflict("this delivery is still being tried; it needs no redelivery")
    d.status, d.next_attempt_at, d.claimed_until = DeliveryStatus.PENDING.value, _now(), None
    session.add(d)
    audit.record(
        session, actor, "subscription.redeliver", "webhook_delivery", str(d.id), after={"event_id": d.event_id}
    )
    await session.commit()
    await session.refresh(d)
    return delivery_out(d)


def _audited(row: Subscription) -> dict[str, object]:
    return {k: v for k, v in row.model_dump().items() if k != "secret"}


def _now() -> datetime:
    return datetime.now(UTC)


# --- status sync: an integration source's progress reports (its mapping's ``status_sync``) ---


def check_status_sync(sync: StatusSync | None, development: bool) -> None:
    """A 422 naming the field: a target the sender would refuse, a template that does not compile."""
    if sync is None:
        return
    problem = rules.url_problem(sync.url, development)
    if problem:
        raise FieldInvalid("status_sync.url", problem)
    for event, source in sync.statuses.items():
        if problem := rules.body_template_problem(source):
            raise FieldInvalid(f"status_sync.statuses.{event}", problem)


async def sync_status_subscription(session: AsyncSession, source: IntegrationSource, sync: StatusSync | None) -> None:
    """The source's status-sync subscription made to match its newly published mapping (with the
    caller's commit): owned by the source's machine account, filtered to its channel (and, in
    ``store.subscriptions``, to the tickets that account created), signed with the source's
    secret. A mapping without ``status_sync`` removes it."""
    row = await store.by_source(session, source.code)
    if sync is None:
        if row is not None:
            await store.delete(session, row.id)
        return
    if row is None:
        row = Subscription(id=store.new_id(), owner_id=source.actor_id, url=sync.url, secret=source.secret,
                           source=source.code, created_at=_now())  # fmt: skip
    row.owner_id, row.url, row.secret = source.actor_id, sync.url, source.secret
    row.events = list(sync.statuses)
    row.body_templates = {str(k): v for k, v in sync.statuses.items()}
    row.sources, row.regions, row.ticket_types = [source.channel], [], []
    store.add(session, row)
