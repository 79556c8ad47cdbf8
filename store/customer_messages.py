"""Customer messages: every query on ``customer_message`` (the outbox) and
``customer_message_template`` (the words).

``record`` is called by ``store.tickets.record_changes`` inside the projection's transaction: the
events that matter to the customer become outbox rows in the same commit as the events
themselves, so no event is told twice or lost, and the ticket workflow does no extra round
trip. It costs nothing for the events that do not matter (most of them) and a few indexed
reads for those that do. The delivery loop (``activities/customer_messages.py``) takes the rows
from there: ``due`` (head of each ticket's line), ``hold``, ``claim``, ``finish``.
"""

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain import message_templates as rules
from models.customer_message_tables import CustomerMessage, CustomerMessageTemplate
from models.customer_messages import (
    ANY,
    IDENTITY_KIND,
    NO_CHANNEL,
    QUIET_EXEMPT,
    CustomerChannel,
    CustomerMessageSettings,
    MessageKind,
    MessageStatus,
    PersonView,
    RenderContext,
    TicketView,
)
from models.customer_tables import CustomerIdentity
from models.db import upsert_statement
from models.tables import Actor, Region
from models.ticket import TicketEvent, TicketState
from store import customers

log = logging.getLogger(__name__)

MESSAGE = cast(sa.Table, CustomerMessage.__table__)  # type: ignore[attr-defined]
TEMPLATE = cast(sa.Table, CustomerMessageTemplate.__table__)  # type: ignore[attr-defined]

# (session on the projection's connection, ticket id) → the customer's tracking link, or None.
TrackingLink = Callable[[AsyncSession, str], Awaitable[str | None]]


class _Config:
    settings: CustomerMessageSettings | None = None
    tracking_link: TrackingLink | None = None


_config = _Config()


def configure(settings: CustomerMessageSettings | None = None, tracking_link: TrackingLink | None = None) -> None:
    """Install the settings (and the tracking-link maker) the projection writes rows with;
    ``configure()`` resets to the environment's settings and no link."""
    _config.settings, _config.tracking_link = settings, tracking_link


def current_settings() -> CustomerMessageSettings:
    if _config.settings is None:
        _config.settings = CustomerMessageSettings()
    return _config.settings


def idempotency_key(ticket_id: str, seq: int, kind: str, channel: str) -> str:
    return f"{ticket_id}|{seq}|{kind}|{channel}"


def delivery_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def timezone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# --- written with the projection ---


async def record(conn: AsyncConnection, state: TicketState, events: Sequence[TicketEvent]) -> None:
    """The outbox rows for ``events`` of a ticket with a customer, in the caller's transaction.
    A repeat of the same events adds nothing: an event already told (any channel) is left alone,
    and the unique key catches a concurrent writer.

    In a savepoint: a database error propagates (the projection retries, as for its own
    writes), but a fault of this code is logged and leaves the read model going — a ticket
    never waits on its customer messages."""
    if state.customer_id is None or not any(rules.kind_of(e) for e in events):
        return  # the common case: no query at all
    try:
        async with conn.begin_nested():
            await _record(conn, state, events)
    except DBAPIError:
        raise
    except Exception:  # noqa: BLE001 - see above
        log.exception("customer messages of %s (events %s) not written", state.ticket_id, [e.seq for e in events])


async def _record(conn: AsyncConnection, state: TicketState, events: Sequence[TicketEvent]) -> None:
    told = (
        await conn.execute(sa.select(MESSAGE.c.seq, MESSAGE.c.kind).where(MESSAGE.c.ticket_id == state.ticket_id))
    ).all()
    done = {(seq, kind) for seq, kind in told}
    kinds = {kind for _, kind in told}
    wanted: list[tuple[TicketEvent, MessageKind]] = []
    for event in events:
        kind = rules.kind_of(event, kinds)
        if kind is not None and (event.seq, kind.value) not in done:
            wanted.append((event, kind))
            kinds.add(kind.value)
    if not wanted:
        return
    settings = current_settings()
    async with AsyncSession(bind=conn, expire_on_commit=False) as session:  # the link maker commits
        writer = _Writer(settings, state, datetime.now(UTC))
        await writer.load(session, wanted)
        rows = [row for event, kind in wanted for row in await writer.rows(session, event, kind)]
    await conn.execute(
        upsert_statement(conn.dialect.name, MESSAGE)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["ticket_id", "seq", "kind", "channel"])
    )
    for row in rows:  # a time-critical message takes the held ones before it along
        if row["quiet_exempt"] and row["status"] == MessageStatus.PENDING.value:
            await conn.execute(
                sa.update(MESSAGE)
                .where(
                    MESSAGE.c.ticket_id == row["ticket_id"],
                    MESSAGE.c.channel == row["channel"],
                    MESSAGE.c.seq < row["seq"],
                    MESSAGE.c.status == MessageStatus.PENDING.value,
                )
                .values(quiet_exempt=True)
            )


class _Writer:
    """Builds the rows of one projection write (one customer, one ticket)."""

    def __init__(self, settings: CustomerMessageSettings, state: TicketState, now: datetime) -> None:
        self.settings, self.state, self.now = settings, state, now
        self.customer_id = state.customer_id or ""
        self.customer_name = ""
        self.language = "zh"
        self.consent: dict[str, Any] = {}
        self.addresses: dict[CustomerChannel, str] = {}
        self.templates: dict[rules.TemplateKey, tuple[str, str, int]] = {}  # subject, body, version
        self.names: dict[str, str] = {}
        self.tz = ZoneInfo("UTC")
        self.link: str | None = None  # issued on first need (a row that will be sent)

    async def load(self, session: AsyncSession, wanted: list[tuple[TicketEvent, MessageKind]]) -> None:
        state, kinds = self.state, {k for _, k in wanted}
        customer = await customers.get(session, self.customer_id)
        if customer is not None:
            self.customer_id, self.customer_name = customer.id, customer.name
            self.language, self.consent = customer.language, dict(customer.consent or {})
            q = (
                select(CustomerIdentity)
                .where(CustomerIdentity.customer_id == customer.id)
                .order_by(col(CustomerIdentity.verified).desc(), col(CustomerIdentity.id))
            )
            by_kind: dict[str, str] = {}
            for identity in await session.exec(q):
                by_kind.setdefault(identity.kind, identity.value)
            self.addresses = {ch: by_kind[k] for ch, k in IDENTITY_KIND.items() if k in by_kind}
        q_t = select(CustomerMessageTemplate).where(
            col(CustomerMessageTemplate.ticket_type).in_([state.ticket_type, ANY]),
            col(CustomerMessageTemplate.kind).in_([k.value for k in kinds]),
            col(CustomerMessageTemplate.language).in_(rules.languages(self.language)),
        )
        self.templates = {
            (t.ticket_type, t.kind, t.language, t.channel): (t.subject, t.body, t.version)
            for t in await session.exec(q_t)
        }
        people = sorted({p for e, k in wanted if (p := self._engineer_id(k, e))})
        if people:
            q_a = select(Actor.id, Actor.name).where(col(Actor.id).in_(people))
            self.names = {i: n for i, n in (await session.exec(q_a)).all()}
        region = await session.get(Region, state.region)
        self.tz = timezone(region.timezone if region else None)

    def _engineer_id(self, kind: MessageKind, event: TicketEvent | None = None) -> str | None:
        data = event.data if event is not None else {}
        person = data.get("assignee") or self.state.assignee
        if event is not None and kind == MessageKind.ON_THE_WAY and event.action == "start":
            person = event.actor_id
        return person if isinstance(person, str) and person != "system" else None

    def context(self, event: TicketEvent, kind: MessageKind) -> RenderContext:
        state, data = self.state, event.data
        engineer = self._engineer_id(kind, event)
        fields = data.get("fields") if isinstance(data.get("fields"), dict) else {}
        eta = ((fields or {}).get("eta") or state.fields.get("eta")) if kind == MessageKind.ON_THE_WAY else None
        question = data.get("question") if kind == MessageKind.INFO_NEEDED else None
        return RenderContext(
            kind=kind.value,
            ticket=TicketView(
                id=state.ticket_id, title=state.title, status=event.to_status.value, type=state.ticket_type
            ),
            customer=PersonView(name=self.customer_name),
            engineer=PersonView(name=self.names.get(engineer, "") if engineer else ""),
            eta=rules.eta_text(eta, self.tz),
            question=question if isinstance(question, str) else "",
            tracking_url=self.link or "",
        )

    async def rows(self, session: AsyncSession, event: TicketEvent, kind: MessageKind) -> list[dict[str, Any]]:
        s = self.settings
        if event.at < self.now - timedelta(seconds=s.customer_message_max_age_s):
            return [self.row(event, kind, NO_CHANNEL, "", status=MessageStatus.SKIPPED, reason="event too old to tell")]
        choice = rules.choose_channels(
            self.consent, self.addresses, self.state.channel, s.enabled(), s.customer_message_fanout
        )
        if not choice.chosen:
            why = f"no channel to reach the customer on ({choice.why_not})"
            return [self.row(event, kind, NO_CHANNEL, "", status=MessageStatus.SKIPPED, reason=why)]
        if self.link is None:
            self.link = await _tracking_link(session, self.state.ticket_id)
        context = self.context(event, kind)
        langs = rules.languages(self.language)
        out = []
        for channel, address in choice.chosen:
            key = rules.pick_template(self.templates, self.state.ticket_type, kind.value, langs, channel.value)
            if key is None:
                why = f"no {kind.value} template for {self.state.ticket_type} in {'/'.join(langs)}"
                out.append(self.row(event, kind, channel.value, address, status=MessageStatus.SKIPPED, reason=why))
                continue
            subject_t, body_t, version = self.templates[key]
            try:
                subject, body = rules.render(subject_t, body_t, context)
            except rules.RenderError as exc:
                out.append(
                    self.row(
                        event, kind, channel.value, address, status=MessageStatus.FAILED, reason=str(exc)[:2000],
                        language=key[2], version=version,
                    )
                )  # fmt: skip
                continue
            data = self.data(context, kind, channel)
            out.append(
                self.row(
                    event, kind, channel.value, address, subject=subject, body=body, data=data,
                    language=key[2], version=version,
                )
            )  # fmt: skip
        return out

    def data(self, context: RenderContext, kind: MessageKind, channel: CustomerChannel) -> dict[str, Any]:
        data: dict[str, Any] = {
            "ticket": context.ticket.model_dump(),
            "engineer": context.engineer.name,
            "eta": context.eta,
            "tracking_url": context.tracking_url,
        }
        if channel == CustomerChannel.WECHAT:
            ids = self.settings.customer_wechat_template_ids
            data["template_id"] = ids.get(kind.value) or ids.get("default") or kind.value
        return data

    def row(
        self,
        event: TicketEvent,
        kind: MessageKind,
        channel: str,
        recipient: str,
        *,
        status: MessageStatus = MessageStatus.PENDING,
        reason: str | None = None,
        subject: str = "",
        body: str = "",
        data: dict[str, Any] | None = None,
        language: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        key = idempotency_key(self.state.ticket_id, event.seq, kind.value, channel)
        return {
            "ticket_id": self.state.ticket_id,
            "seq": event.seq,
            "kind": kind.value,
            "customer_id": self.customer_id,
            "region": self.state.region,
            "channel": channel,
            "recipient": recipient,
            "language": (language or self.language)[:8],
            "template_version": version,
            "subject": subject,
            "body": body,
            "data": data or {},
            "delivery_id": delivery_id(key),
            "status": status.value,
            "reason": reason,
            "attempts": 0,
            "next_attempt_at": self.now,
            "held_until": None,
            "quiet_exempt": kind in QUIET_EXEMPT,
            "claimed_until": None,
            "created_at": self.now,
            "updated_at": self.now,
            "sent_at": None,
        }


async def _tracking_link(session: AsyncSession, ticket_id: str) -> str:
    """The tracking link (when a maker is installed), in a savepoint of the projection's
    transaction: a failure leaves the message without a link, never the read model behind."""
    if _config.tracking_link is None:
        return ""
    try:
        async with session.begin_nested():
            return (await _config.tracking_link(session, ticket_id)) or ""
    except Exception:  # noqa: BLE001 - an optional link must not stop the read model
        log.warning("customer message: no tracking link for %s", ticket_id, exc_info=True)
        return ""


# --- the delivery loop ---


async def due(conn: AsyncConnection, channel: str, now: datetime, limit: int) -> list[CustomerMessage]:
    """Rows of ``channel`` to send now, each the first not-yet-delivered one of its ticket and
    recipient (a ticket's messages go out in order): pending, due, not held by another sender,
    and not held for quiet hours (unless a time-critical message behind it releases it)."""
    m, e = MESSAGE, MESSAGE.alias("earlier")
    earlier = (
        sa.select(sa.literal(1))
        .select_from(e)
        .where(
            e.c.ticket_id == m.c.ticket_id,
            e.c.channel == m.c.channel,
            e.c.recipient == m.c.recipient,
            e.c.status == MessageStatus.PENDING.value,
            sa.or_(e.c.seq < m.c.seq, sa.and_(e.c.seq == m.c.seq, e.c.id < m.c.id)),
        )
    )
    q = (
        sa.select(m)
        .where(
            m.c.channel == channel,
            m.c.status == MessageStatus.PENDING.value,
            sa.or_(m.c.next_attempt_at <= now, sa.and_(m.c.quiet_exempt, m.c.held_until.is_not(None))),
            sa.or_(m.c.claimed_until.is_(None), m.c.claimed_until < now),
            ~earlier.exists(),
        )
        .order_by(m.c.next_attempt_at, m.c.id)
        .limit(limit)
    )
    return [CustomerMessage.model_validate(dict(r._mapping)) for r in (await conn.execute(q)).all()]


async def hold(conn: AsyncConnection, row_id: int | None, until: datetime, now: datetime) -> bool:
    """Hold a row for quiet hours (unless a time-critical message released it meanwhile)."""
    stmt = (
        sa.update(MESSAGE)
        .where(
            MESSAGE.c.id == row_id,
            MESSAGE.c.status == MessageStatus.PENDING.value,
            sa.not_(MESSAGE.c.quiet_exempt),
        )
        .values(
            held_until=until,
            next_attempt_at=until,
            reason=f"held for quiet hours until {until.isoformat()}",
            updated_at=now,
        )
    )
    return bool((await conn.execute(stmt)).rowcount)


async def claim(conn: AsyncConnection, row_id: int | None, now: datetime, lease_s: float) -> int | None:
    """Take a row for one send; the new attempt count, or None when another sender has it or it
    is no longer pending."""
    stmt = (
        sa.update(MESSAGE)
        .where(
            MESSAGE.c.id == row_id,
            MESSAGE.c.status == MessageStatus.PENDING.value,
            sa.or_(MESSAGE.c.claimed_until.is_(None), MESSAGE.c.claimed_until < now),
        )
        .values(
            claimed_until=now + timedelta(seconds=lease_s),
            attempts=MESSAGE.c.attempts + 1,
            held_until=None,  # released (quiet hours over, or a time-critical message took it along)
            updated_at=now,
        )
        .returning(MESSAGE.c.attempts)
    )
    got = (await conn.execute(stmt)).first()
    return None if got is None else int(got[0])


async def finish(conn: AsyncConnection, row_id: int | None, **values: Any) -> None:
    """Record how a send ended (status, reason, sent_at, next_attempt_at…) and release the row."""
    values.setdefault("claimed_until", None)
    await conn.execute(sa.update(MESSAGE).where(MESSAGE.c.id == row_id).values(**values))


async def region_timezones(conn: AsyncConnection) -> dict[str, ZoneInfo]:
    rows = (await conn.execute(sa.select(Region.code, Region.timezone))).all()  # type: ignore[call-overload]
    return {code: timezone(tz) for code, tz in rows}


async def of_ticket(session: AsyncSession, ticket_id: str) -> list[CustomerMessage]:
    """A ticket's messages in the order they were told (ops, tests)."""
    q = (
        select(CustomerMessage)
        .where(CustomerMessage.ticket_id == ticket_id)
        .order_by(col(CustomerMessage.seq), col(CustomerMessage.id))
    )
    return list(await session.exec(q))


# --- templates ---


async def templates(
    session: AsyncSession, ticket_type: str | None = None, kind: str | None = None, language: str | None = None
) -> list[CustomerMessageTemplate]:
    q = select(CustomerMessageTemplate)
    for column, value in (
        (CustomerMessageTemplate.ticket_type, ticket_type),
        (CustomerMessageTemplate.kind, kind),
        (CustomerMessageTemplate.language, language),
    ):
        if value is not None:
            q = q.where(col(column) == value)
    q = q.order_by(
        col(CustomerMessageTemplate.ticket_type),
        col(CustomerMessageTemplate.kind),
        col(CustomerMessageTemplate.language),
        col(CustomerMessageTemplate.channel),
    )
    return list(await session.exec(q))


async def template(
    session: AsyncSession, ticket_type: str, kind: str, language: str, channel: str
) -> CustomerMessageTemplate | None:
    q = select(CustomerMessageTemplate).where(
        CustomerMessageTemplate.ticket_type == ticket_type,
        CustomerMessageTemplate.kind == kind,
        CustomerMessageTemplate.language == language,
        CustomerMessageTemplate.channel == channel,
    )
    return (await session.exec(q)).first()


def save_template(session: AsyncSession, row: CustomerMessageTemplate) -> None:
    """Written with the caller's commit."""
    session.add(row)
