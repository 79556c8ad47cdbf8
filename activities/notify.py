"""``notify.send``: route a notification, write it to the outbox, deliver what is not sent yet.

1. Recipients are resolved (actor ids, ``role:``/``group:`` of the ticket's region, plain
   addresses) and routed by the pure rules in ``domain/notify_rules.py``.
2. Each (business key, channel, recipient) becomes one ``notification_outbox`` row with a
   unique ``dedup_key``, inserted ``ON CONFLICT DO NOTHING``; the message text is rendered
   once, into the row, so every attempt sends the same thing.
3. The dispatcher claims each row not yet sent (a short lease: two concurrent attempts
   never both send it), hands it to its channel adapter and marks it ``sent`` — or records
   ``attempts`` and ``last_error``. A retry of the activity only re-sends rows not ``sent``.
4. While any delivery is still retryable the activity raises a retryable
   ``ApplicationError`` (type ``NotificationDeliveryPending``) so Temporal retries it.
   Permanent failures (and rows past ``max_attempts``) are marked ``failed`` and reported
   in the result instead: an undeliverable address must not wedge the ticket.

Configuration: the worker calls ``configure(settings)`` at start; without it the activity
uses ``get_settings()``. Tests pass their own ``Settings`` (and may pass adapters).
"""

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import DeliveryError, NotificationChannel, OutboundMessage, build_channels
from activities.resources import database
from domain import notify_rules as rules
from domain.access import can_access_region
from models.db import Database
from models.notifications import Channel, DeliveryOutcome, NotifyInput, NotifyResult
from models.notifications_tables import DeliveryStatus, NotificationOutbox
from models.settings import Settings, get_settings
from models.ticket import ActorRef
from store import notifications, people

PENDING_ERROR = "NotificationDeliveryPending"
CONFIG_ERROR = "NotificationConfigInvalid"

# --- configuration (the worker calls configure(settings) at start) ---


@dataclass
class _Config:
    settings: Settings | None = None
    channels: Mapping[Channel, NotificationChannel] | None = None
    max_attempts: int = 20  # claims per row before it is given up as failed
    lease_s: float = 120.0  # how long a sender holds a row; longer than any single send


_config = _Config()


def configure(
    settings: Settings | None = None,
    *,
    channels: Mapping[Channel, NotificationChannel] | None = None,
    max_attempts: int = 20,
    lease_s: float = 120.0,
) -> None:
    """Install the settings (and, in tests, adapters) ``notify.send`` uses; ``configure()`` resets."""
    global _config
    _config = _Config(settings, channels, max_attempts, lease_s)


def current_settings() -> Settings:
    return _config.settings or get_settings()


# --- message templates (plain text, bilingual labels, UTF-8) ---


@dataclass(frozen=True)
class EventText:
    en: str
    zh: str
    line_en: str
    line_zh: str


TEMPLATES: Mapping[str, EventText] = {
    "assigned": EventText(
        "Assigned to you", "已指派给您", "This ticket is now yours.", "该工单已指派给您，请及时处理。"
    ),
    "approval_needed": EventText("Approval needed", "待审批", "Your approval is needed.", "该工单需要您的审批。"),
    "reminder": EventText("Reminder", "提醒", "The ticket is waiting for you.", "该工单仍在等待处理。"),
    "breach": EventText("SLA breached", "已超时", "The ticket missed its SLA target.", "该工单已超出服务时限。"),
    "escalation": EventText("Escalated", "已升级", "The ticket was escalated to you.", "该工单已升级至您处理。"),
    "resolved": EventText("Resolved", "已解决", "The ticket was resolved.", "该工单已解决。"),
    "offered": EventText(
        "Job offered", "抢单", "A job is offered to you: the first to claim it gets it.", "有新工单可抢，先到先得。"
    ),
    "unassigned": EventText(
        "Nobody to assign", "无人可派", "Dispatch found nobody for this ticket.", "该工单无合适人员可派，请人工处理。"
    ),
    "info_requested": EventText(
        "Information needed", "需要补充信息", "The engineer needs information from you.", "处理人员需要您补充信息。"
    ),
    "info_received": EventText("Customer replied", "客户已回复", "The customer answered.", "客户已回复您的问题。"),
    "low_stock": EventText("Low stock", "库存不足", "A spare part is running low.", "备件库存不足，请及时补货。"),
}


def _template(event: str) -> EventText:
    label = event.replace("_", " ").capitalize()
    return TEMPLATES.get(event, EventText(label, label, "", ""))


def render(req: NotifyInput, reason: str = "to", threshold: Decimal | None = None) -> tuple[str, str]:
    """Subject and body of a notification (the same for every channel)."""
    t, tk = _template(req.event), req.ticket
    subject = f"[{tk.id}] {t.en} / {t.zh}: {tk.title}"[:300]
    lines = [line for line in (t.line_zh, t.line_en) if line]
    lines += [
        "",
        f"工单 Ticket: {tk.id} — {tk.title}",
        f"区域 Region: {tk.region}    优先级 Priority: {tk.priority}    状态 Status: {tk.status or '-'}",
        f"紧急程度 Urgency: {req.urgency.value}",
    ]
    if req.amount is not None:
        lines.append(f"金额 Amount: {req.amount} {req.currency or ''}".rstrip())
    if req.text:
        lines += ["", req.text]
    if tk.link:
        lines += ["", tk.link]
    if reason.startswith("cc "):
        group = reason[3:]
        lines += ["", f"抄送 Copy for {group}: amount above {threshold}."]
    return subject, "\n".join(lines) + "\n"


# --- recipients ---


async def resolve_contacts(
    db: Database, wanted: rules.Recipients, region: str
) -> tuple[list[rules.Contact], list[DeliveryOutcome]]:
    """Actors (by id, role or group of the region) with their contact details."""
    skipped: list[DeliveryOutcome] = []
    async with db.session() as s:
        ids = list(wanted.actor_ids)
        found = await people.by_ids(s, ids)
        for actor_id in ids:
            a = found.get(actor_id)
            if a is None or not a.active:
                why = "unknown actor" if a is None else "actor deactivated"
                skipped.append(DeliveryOutcome(channel=Channel.INBOX, recipient=actor_id, status="skipped", error=why))
        chosen = [i for i in ids if i in found and found[i].active]
        if wanted.roles or wanted.groups:
            members = []
            for a in await people.active_people(s):
                in_region = can_access_region(ActorRef(id=a.id, regions=list(a.regions)), region)
                if in_region and (set(a.roles) & set(wanted.roles) or set(a.groups) & set(wanted.groups)):
                    members.append(a.id)
            chosen += [m for m in members if m not in chosen]
        contacts = await notifications.contacts_of(s, chosen)
    out = []
    for actor_id in chosen:
        c = contacts.get(actor_id)
        out.append(rules.Contact(actor_id, c.email if c else None, c.phone if c else None, c.im_user if c else None))
    return out, skipped


# --- outbox ---


def dedup_key(base: str, channel: Channel, recipient: str) -> str:
    return f"{base}|{channel.value}|{recipient.lower() if channel is Channel.EMAIL else recipient}"


def delivery_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def outbox_rows(req: NotifyInput, deliveries: Sequence[rules.Delivery], threshold: Decimal) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = []
    for d in deliveries:
        key = dedup_key(req.dedup_key, d.channel, d.recipient)
        subject, body = render(req, d.reason, threshold)
        rows.append(
            {
                "dedup_key": key,
                "delivery_id": delivery_id(key),
                "base_key": req.dedup_key,
                "ticket_id": req.ticket.id,
                "event": req.event,
                "channel": d.channel.value,
                "recipient": d.recipient,
                "actor_id": d.actor_id,
                "subject": subject,
                "body": body,
                "data": {
                    "urgency": req.urgency.value,
                    "ticket": req.ticket.model_dump(mode="json"),
                    "amount": str(req.amount) if req.amount is not None else None,
                    "currency": req.currency,
                    "reason": d.reason,
                },
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def message_of(row: NotificationOutbox) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=row.delivery_id,
        dedup_key=row.dedup_key,
        channel=Channel(row.channel),
        recipient=row.recipient,
        actor_id=row.actor_id,
        ticket_id=row.ticket_id,
        event=row.event,
        subject=row.subject,
        body=row.body,
        data=dict(row.data),
    )


# --- dispatcher ---


def _outcome(
    row: NotificationOutbox, status: str, error: str | None = None, attempts: int | None = None
) -> DeliveryOutcome:
    return DeliveryOutcome(
        channel=Channel(row.channel),
        recipient=row.recipient,
        actor_id=row.actor_id,
        status=status,  # type: ignore[arg-type]
        attempts=row.attempts if attempts is None else attempts,
        error=error,
    )


async def deliver(
    db: Database, row: NotificationOutbox, channel: NotificationChannel, max_attempts: int, lease_s: float
) -> DeliveryOutcome:
    if row.status == DeliveryStatus.SENT:
        return _outcome(row, "already_sent")
    if row.status == DeliveryStatus.FAILED:
        return _outcome(row, "failed", row.last_error)
    attempts = await notifications.claim(db, row.id, lease_s)
    if attempts is None:  # someone else finished it, gave it up, or is sending it right now
        now_row = await notifications.outbox_row(db, row.id)
        assert now_row is not None
        if now_row.status == DeliveryStatus.SENT:
            return _outcome(now_row, "already_sent")
        if now_row.status == DeliveryStatus.FAILED:
            return _outcome(now_row, "failed", now_row.last_error)
        return _outcome(now_row, "pending", "being sent by another attempt")
    try:
        await channel.send(message_of(row))
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
        permanent = isinstance(exc, DeliveryError) and exc.permanent
        error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        give_up = permanent or attempts >= max_attempts
        status = DeliveryStatus.FAILED if give_up else DeliveryStatus.PENDING
        await notifications.finish(db, row.id, status=status.value, last_error=error[:2000], claimed_until=None)
        return _outcome(row, "failed" if give_up else "pending", error, attempts)
    await notifications.finish(
        db, row.id, status=DeliveryStatus.SENT.value, sent_at=datetime.now(UTC), claimed_until=None
    )
    return _outcome(row, "sent", None, attempts)


async def dispatch(
    db: Database,
    rows: Sequence[NotificationOutbox],
    channels: Mapping[Channel, NotificationChannel],
    *,
    max_attempts: int,
    lease_s: float,
    concurrency: int = 8,
) -> list[DeliveryOutcome]:
    """Send every row not yet sent (at most ``concurrency`` at a time); outcomes in row order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(row: NotificationOutbox) -> DeliveryOutcome:
        async with gate:
            return await deliver(db, row, channels[Channel(row.channel)], max_attempts, lease_s)

    return list(await asyncio.gather(*(one(r) for r in rows)))


# --- the activity ---


def _threshold(settings: Settings) -> Decimal:
    try:
        return Decimal(settings.notify_amount_threshold)
    except InvalidOperation as exc:
        raise ApplicationError(
            f"TICKETFLOW_NOTIFY_AMOUNT_THRESHOLD is not a decimal: {settings.notify_amount_threshold!r}",
            type=CONFIG_ERROR,
        ) from exc


@activity.defn(name="notify.send")
async def send_notification(req: NotifyInput) -> NotifyResult:
    settings = current_settings()
    db = database()
    threshold = _threshold(settings)
    wanted = rules.parse_recipients(req.recipients)
    contacts, skipped = await resolve_contacts(db, wanted, req.ticket.region)
    route = rules.route(req.event, req.urgency, req.amount, threshold)
    cc = {"finance": settings.finance_cc, "legal": settings.legal_cc}
    plan = rules.plan(route, contacts, wanted, cc, webhook_enabled=bool(settings.webhook_url))
    skipped += [
        DeliveryOutcome(channel=s.channel, recipient=s.recipient, actor_id=s.actor_id, status="skipped", error=s.why)
        for s in plan.skipped
    ]

    rows = await notifications.write_outbox(db, outbox_rows(req, plan.deliveries, threshold))
    channels = _config.channels or build_channels(settings, db)
    outcomes = await dispatch(db, rows, channels, max_attempts=_config.max_attempts, lease_s=_config.lease_s)

    pending = [o for o in outcomes if o.status == "pending"]
    if pending:
        detail = "; ".join(f"{o.channel.value} {o.recipient}: {o.error}" for o in pending)
        raise ApplicationError(
            f"{len(pending)} of {len(outcomes)} deliveries not done yet ({detail})", type=PENDING_ERROR
        )
    return NotifyResult(
        dedup_key=req.dedup_key,
        channels=list(route.channels),
        deliveries=[*outcomes, *skipped],
        sent=sum(o.status == "sent" for o in outcomes),
        already_sent=sum(o.status == "already_sent" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        skipped=len(skipped),
    )
