"""The inbound dispatcher: one customer message, already verified and parsed by its adapter,
becomes one action, chosen by the customer's state (docs/channels.md):

- a photo → ``customer_photo`` on their open ticket (its address in the text);
- while their ticket waits for ``customer_confirmed``: a confirmation → that event (with the
  rating, where the template lets the event set it); a rejection → ``customer_rejected`` where
  the template declares it, else a ``customer_reply`` (the intent kept on the delivery record);
- any other text on an open ticket (an answer to ``request_info`` or a follow-up) → ``customer_reply``;
- no open ticket, or a message that names an asset or says "new" → a new ticket for the customer
  (and the asset), created as the channel's machine account.

"Their open ticket" is one this channel created for the customer (or a record merged into
theirs) that is not closed: the newest one waiting on them, else the newest. An unknown sender
becomes a new customer in the channel's default region — unless the message names an asset:
then the ticket is the asset owner's and nobody is created (a phone typed into a form proves
nothing). A customer or asset of a region the channel's account does not serve is refused (403).
A ``serial`` (the app's) names only a machine of the sender's own and goes on as its QR code —
intake takes a machine from a customer channel by its QR code only.

Each delivery id counts once. The plan is recorded (``channel_delivery``) before the ticket is
touched and completed after; the action carries the idempotency key ``<channel>:<delivery id>``,
so a repeat — after a crash in between, or concurrently — carries out the recorded plan again
and converges on one outcome. A plan the ticket refuses (a 4xx) is forgotten with the refusal.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

import store.assets
import store.channels
import store.customers
import store.tickets
from api.channels.base import InboundMessage, Intent, intent_of
from api.errors import Conflict, DomainError, FieldInvalid, Forbidden, ServiceUnavailable
from api.services import audit, customers, templates, tickets
from api.services.channel_registry import TICKET_CHANNEL
from domain.access import can_access_region
from domain.classification import classify
from domain.identities import BadIdentity, normalize
from domain.lifecycle import TERMINAL
from models.channel_tables import ChannelDelivery, InboundChannel
from models.channels import InboundResult
from models.customer_tables import Asset, Customer
from models.schemas import AssetLookup, CustomerLookup, TicketCreate
from models.settings import Settings
from models.template import TemplateSpec
from models.ticket import ActorRef, TicketState

log = logging.getLogger(__name__)

REPLY, PHOTO = "customer_reply", "customer_photo"
CONFIRMED, REJECTED = "customer_confirmed", "customer_rejected"
OUTCOME_OF = {REPLY: "replied", PHOTO: "photo_added", CONFIRMED: "confirmed", REJECTED: "rejected"}
MAX_TITLE = 120
TICKETS_LOOKED_AT = 5  # open tickets of the customer read to find the one waiting on them
NEW_CUSTOMER_NAMES = {"wechat_openid": "WeChat user", "app_user": "App user", "phone": "Customer"}


@dataclass
class Plan:
    outcome: str
    event: str | None = None  # the event an answer sends, to ``ticket_id``
    ticket_id: str | None = None
    customer_id: str | None = None
    intent: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # the event's fields (a rating)


async def receive(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    channel: InboundChannel,
    actor: ActorRef,
    msg: InboundMessage,
) -> InboundResult:
    row = await store.channels.delivery(session, channel.code, msg.delivery_id)
    if row is not None and row.completed_at is not None:
        return _result(row, duplicate=True)
    msg = await _serial_as_qr(session, msg)
    if row is None:
        row = await _claim(session, channel, msg, await _decide(session, channel, actor, msg))
    if row.completed_at is not None:
        return _result(row, duplicate=True)
    key = f"{channel.code}:{msg.delivery_id}"
    try:
        ticket_id = await _carry_out(session, client, settings, channel, actor, msg, row, key)
    except DomainError as exc:
        if exc.status_code < 500:  # refused: nothing happened, the delivery may come again
            await _forget(session, channel.code, msg.delivery_id)
        raise
    row = await store.channels.delivery(session, channel.code, msg.delivery_id) or row  # fresh after the action
    row.ticket_id, row.completed_at = ticket_id, datetime.now(UTC)
    store.channels.save(session, row)
    await session.commit()
    log.info("inbound %s:%s %s ticket %s", channel.code, msg.delivery_id, row.outcome, ticket_id)
    return _result(row, duplicate=False)


def _result(row: ChannelDelivery, duplicate: bool) -> InboundResult:
    assert row.ticket_id is not None
    return InboundResult(
        outcome=row.outcome,  # type: ignore[arg-type]  # checked by the table's constraint
        ticket_id=row.ticket_id,
        delivery_id=row.delivery_id,
        duplicate=duplicate,
        intent=row.intent,
    )


async def _claim(session: AsyncSession, channel: InboundChannel, msg: InboundMessage, plan: Plan) -> ChannelDelivery:
    """Record the plan before acting on it; a concurrent delivery of the same id that recorded
    its plan first wins, and this one follows that plan."""
    row = ChannelDelivery(
        channel=channel.code,
        delivery_id=msg.delivery_id,
        received_at=datetime.now(UTC),
        outcome=plan.outcome,
        event=plan.event,
        intent=plan.intent,
        ticket_id=plan.ticket_id,
        customer_id=plan.customer_id,
    )
    store.channels.save(session, row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        first = await store.channels.delivery(session, channel.code, msg.delivery_id)
        if first is None:
            raise ServiceUnavailable("the same delivery is being handled by another request; retry") from None
        return first
    return row


async def _forget(session: AsyncSession, code: str, delivery_id: str) -> None:
    await session.rollback()
    row = await store.channels.delivery(session, code, delivery_id)
    if row is not None and row.completed_at is None:
        await store.channels.forget(session, row)
        await session.commit()


# --- deciding ---


async def _decide(session: AsyncSession, channel: InboundChannel, actor: ActorRef, msg: InboundMessage) -> Plan:
    identity = _identity(msg)
    asset = await _asset(session, actor, msg)
    customer = await _sender(session, actor, identity)
    if asset is not None:  # a report about this asset, for its owner
        owner = customer if customer is not None and asset.customer_id in await _family(session, customer) else None
        return Plan(outcome="created", customer_id=owner.id if owner is not None else None)
    if customer is None:
        customer = await _new_customer(session, channel, actor, msg, identity)
    if msg.intent is Intent.NEW:
        return Plan(outcome="created", customer_id=customer.id)
    found = await _waiting_ticket(session, channel, await _family(session, customer))
    said = msg.intent in (Intent.CONFIRM, Intent.REJECT)  # a button, not words: it must meet a confirmation
    if said and (found is None or not _awaits(found[1], found[2], CONFIRMED)):
        assert msg.intent is not None
        raise Conflict(f"no open ticket of this customer awaits a {msg.intent.value}", code="nothing_to_confirm")
    if found is None:
        return Plan(outcome="created", customer_id=customer.id)
    ticket_id, state, spec = found
    plan = _answer(msg, state, spec)
    plan.ticket_id, plan.customer_id = ticket_id, customer.id
    return plan


def _answer(msg: InboundMessage, state: TicketState, spec: TemplateSpec) -> Plan:
    """Which event the message is to the ticket waiting on the customer."""
    if msg.photo_url:
        return Plan(outcome=OUTCOME_OF[PHOTO], event=PHOTO)
    intent = msg.intent or (intent_of(msg.text) if _awaits(state, spec, CONFIRMED) else None)
    if intent is Intent.CONFIRM and _awaits(state, spec, CONFIRMED):
        return Plan(outcome=OUTCOME_OF[CONFIRMED], event=CONFIRMED, fields=_rating(msg, spec))
    if intent is Intent.REJECT and _awaits(state, spec, CONFIRMED) and spec.event(REJECTED) is not None:
        return Plan(outcome=OUTCOME_OF[REJECTED], event=REJECTED)
    kept = intent.value if intent is Intent.REJECT else None  # meant, but the template takes no rejection
    return Plan(outcome=OUTCOME_OF[REPLY], event=REPLY, intent=kept)


def _rating(msg: InboundMessage, spec: TemplateSpec) -> dict[str, Any]:
    event = spec.event(CONFIRMED)
    if msg.rating is None or event is None or store.tickets.SATISFACTION_FIELD not in event.fields:
        return {}
    return {store.tickets.SATISFACTION_FIELD: msg.rating}


def _awaits(state: TicketState, spec: TemplateSpec, event: str) -> bool:
    """An active wait node of the ticket waits for ``event``."""
    for node_id in state.active:
        node = state.nodes.get(node_id)
        if node is not None and node.type == "wait" and getattr(spec.node(node_id), "signal", None) == event:
            return True
    return False


def _awaits_info(state: TicketState) -> bool:
    return any((n := state.nodes.get(i)) is not None and n.awaiting_info is not None for i in state.active)


async def _waiting_ticket(
    session: AsyncSession, channel: InboundChannel, family: list[str]
) -> tuple[str, TicketState, TemplateSpec] | None:
    """The newest of the customer's open tickets from this channel that waits on them (for a
    confirmation or an answer), else the newest open one; None when there is none."""
    rows = await store.channels.open_tickets(session, channel.code, family, sorted(s.value for s in TERMINAL))
    found: list[tuple[str, TicketState, TemplateSpec]] = []
    for row in rows[:TICKETS_LOOKED_AT]:
        try:
            state = TicketState.model_validate(row.snapshot)
        except ValidationError:
            continue
        spec = (await templates.get_version(session, row.ticket_type, row.template_version or None)).spec
        if _awaits(state, spec, CONFIRMED) or _awaits_info(state):
            return row.id, state, spec
        found.append((row.id, state, spec))
    return found[0] if found else None


# --- who and what ---


async def _family(session: AsyncSession, customer: Customer) -> list[str]:
    return await store.customers.family(session, customer.id)


async def _serial_as_qr(session: AsyncSession, msg: InboundMessage) -> InboundMessage:
    """A serial can be read off any machine's plate, so from a customer it names only a machine
    of the sender's own (their record or one merged into it): that machine's QR code, what intake
    takes from a customer channel, goes on in its place. Someone else's, an unknown serial or an
    unknown sender is one 422 on ``serial`` — never a hint whose machine it is."""
    if not msg.serial:
        return msg
    sender = await store.customers.resolve(session, *_identity(msg))
    asset = await store.assets.by_serial(session, msg.serial)
    if sender is None or asset is None or asset.customer_id not in await _family(session, sender):
        raise FieldInvalid("serial", "none of the sender's machines has this serial", "unknown_asset")
    return msg.model_copy(update={"serial": None, "qr_code": asset.qr_code})


async def _asset(session: AsyncSession, actor: ActorRef, msg: InboundMessage) -> Asset | None:
    if not msg.qr_code:  # a serial was made the QR code of the sender's machine (``_serial_as_qr``)
        return None
    asset = await store.assets.by_qr(session, msg.qr_code)
    if asset is None:
        raise FieldInvalid("qr_code", "no such asset", "unknown_asset")
    if not can_access_region(actor, asset.region):
        raise Forbidden(f"channel account {actor.id!r} does not serve region {asset.region!r}")
    return asset


def _identity(msg: InboundMessage) -> tuple[str, str]:
    """The sender's identity in its normal form, or a 422 naming where it was."""
    try:
        return msg.sender_kind, normalize(msg.sender_kind, msg.sender_value)
    except BadIdentity as exc:
        raise FieldInvalid(msg.sender_field, str(exc), "bad_identity") from None


async def _sender(session: AsyncSession, actor: ActorRef, identity: tuple[str, str]) -> Customer | None:
    """The customer the identity belongs to, if any."""
    customer = await store.customers.resolve(session, *identity)
    if customer is not None and not can_access_region(actor, customer.region):
        raise Forbidden(f"channel account {actor.id!r} does not serve region {customer.region!r}")
    return customer


async def _new_customer(
    session: AsyncSession, channel: InboundChannel, actor: ActorRef, msg: InboundMessage, identity: tuple[str, str]
) -> Customer:
    """A customer record for a sender nobody knows, in the channel's default region; a
    concurrent message of the same sender that created it first wins."""
    kind, value = identity
    name = msg.sender_name or f"{NEW_CUSTOMER_NAMES.get(kind, 'Customer')} …{value[-6:]}"
    try:
        customer = await store.channels.add_customer(
            session,
            customer_id=customers.new_customer_id(),
            referral_code=(await customers.free_referral_codes(session, 1))[0],
            name=name,
            region=channel.default_region,
            identity=(kind, value, msg.sender_verified),
        )
        audit_after = {"name": customer.name, "region": customer.region, "identities": [(kind, value)]}
        audit.record(session, actor, "customer.create", "customer", customer.id, None, audit_after)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        found = await store.customers.resolve(session, kind, value)
        if found is None:
            raise ServiceUnavailable("the customer is being created by another request; retry") from None
        return found
    return customer


# --- carrying it out ---


async def _carry_out(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    channel: InboundChannel,
    actor: ActorRef,
    msg: InboundMessage,
    row: ChannelDelivery,
    key: str,
) -> str:
    """Do what the recorded plan says (again, after a crash: the key makes it once); the ticket id."""
    if row.outcome == "created":
        body = await _ticket_body(session, channel, msg, row.customer_id)
        created = await tickets.create_ticket(session, client, settings, actor, body, key)
        return created.ticket.ticket_id
    assert row.event is not None and row.ticket_id is not None
    text = msg.text or None
    if row.event == PHOTO:
        text = f"{msg.photo_url}\n{msg.text}" if msg.text else msg.photo_url
    fields: dict[str, Any] = {}
    if row.event == CONFIRMED and msg.rating is not None:
        version = await templates.get_version(session, *await _pinned(session, row.ticket_id))
        fields = _rating(msg, version.spec)
    await tickets.send_event(session, client, settings, actor, row.ticket_id, row.event, fields, text, key)
    return row.ticket_id


async def _pinned(session: AsyncSession, ticket_id: str) -> tuple[str, int | None]:
    ticket = await store.tickets.get(session, ticket_id)
    if ticket is None:
        raise FieldInvalid("ticket", "the ticket is gone", "unknown_ticket")
    return ticket.ticket_type, ticket.template_version or None


async def _ticket_body(
    session: AsyncSession, channel: InboundChannel, msg: InboundMessage, customer_id: str | None
) -> TicketCreate:
    ticket_channel = TICKET_CHANNEL[channel.kind]
    title = _title(msg)
    spec, priority = await _template(session, channel, ticket_channel.value, title, msg)
    fields = {k: v for k, v in msg.fields.items() if spec is not None and spec.field(k) is not None}
    asset = AssetLookup(qr_code=msg.qr_code) if msg.qr_code else None
    return TicketCreate(
        ticket_type=spec.key if spec is not None else None,
        priority=priority,
        title=title,
        description=msg.text,
        channel=ticket_channel,
        reporter=msg.sender_name or (msg.sender_value if customer_id is None else None),
        fields=fields,
        customer=CustomerLookup(id=customer_id) if customer_id is not None else None,
        asset=asset,
    )


def _title(msg: InboundMessage) -> str:
    first = next((line.strip() for line in msg.text.splitlines() if line.strip()), "")
    if first:
        return first if len(first) <= MAX_TITLE else first[: MAX_TITLE - 1] + "…"
    if fault := msg.fields.get("fault"):
        return f"Fault reported: {fault}"
    return "Photo from a customer" if msg.photo_url else "Message from a customer"


async def _template(
    session: AsyncSession, channel: InboundChannel, ticket_channel: str, title: str, msg: InboundMessage
) -> tuple[TemplateSpec | None, Any]:
    """The template the ticket gets (the channel's default type, else what classification
    picks, as intake would), to keep only the message's fields that template has."""
    if channel.default_ticket_type:
        version = await templates.get_version(session, channel.default_ticket_type)
        return version.spec, None
    published = [
        v.spec
        for v in await templates.all_latest_specs(session)
        if not v.spec.channels or ticket_channel in v.spec.channels
    ]
    found = classify(published, ticket_channel, title, msg.text, msg.fields)
    return (found.spec, found.priority) if found is not None else (None, None)
