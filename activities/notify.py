"""Notifications: ``notify.send`` (the activity) writes them, the delivery loop (``run``) sends them.

``notify.send``
  1. Recipients are resolved (actor ids, ``role:``/``group:`` of the ticket's region, plain
     addresses) and routed by the pure rules in ``domain/notify_rules.py``.
  2. Each (business key, channel, recipient) becomes one ``notification_outbox`` row with a
     unique ``dedup_key``, inserted ``ON CONFLICT DO NOTHING``; the message text is rendered
     once, into the row, so every attempt sends the same thing.
  3. The in-app inbox rows are delivered at once (rows of our own database, unique by
     ``dedup_key``: a repeat adds nothing). Email, SMS and IM rows are left to the delivery loop
     and its lanes are woken. The activity never waits for an external channel: it returns what
     it sent and what it queued, and raises only for its own failures (the database away:
     retried by Temporal; a bad setting: ``NotificationConfigInvalid``).

``run(db, settings, stop)`` — the delivery loop, a background task of the worker (like
``activities/customer_messages.py`` and ``activities/webhooks.py``):

- **One lane per channel**: a dead SMTP server holds up only email, never the inbox, SMS or IM.
  Within a lane up to ``notify_concurrency`` sends run at once, each bounded by
  ``notify_send_timeout_s``: one recipient whose server never answers takes one slot, for that
  long, and the lane goes on with the next rows.
- **Prompt**: ``notify.send`` wakes the lanes of this process (an ``asyncio.Event`` each), so a
  message normally goes out within milliseconds; ``notify_poll_s`` is the fallback for rows other
  processes wrote. Inbox rows reach the loop only if ``notify.send`` did not deliver them
  (``INBOX_FALLBACK``).
- **Once**: a row is claimed with a lease (a conditional update: two workers never both send
  it), sent with its delivery id as ``Message-ID`` / ``Idempotency-Key`` /
  ``X-Ticketflow-Delivery`` and marked ``sent``. On failure it backs off (``next_attempt_at``:
  doubling, with jitter, up to a cap) and is given up as ``failed`` after
  ``notify_max_attempts`` or a permanent refusal. A worker dying between a send and its mark
  re-sends after the lease with the same delivery id, which receivers de-duplicate on.

Configuration: the worker calls ``configure(settings)`` at start; without it the activity uses
``get_settings()``. Tests pass their own ``Settings`` (and may pass adapters); they drive the
loop through ``Deliverer`` (``deliver_due``, or ``run`` beside a worker).
"""

import asyncio
import functools
import hashlib
import logging
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import DeliveryError, NotificationChannel, OutboundMessage, build_channels
from activities.channels.inbox import InboxChannel
from activities.outbox import failure_text, retry_delay, until_dry
from activities.resources import database
from domain import notify_rules as rules
from domain.access import can_access_region
from models import metrics
from models.db import Database
from models.notifications import Channel, DeliveryOutcome, NotifyInput, NotifyResult, NotifySettings
from models.notifications_tables import DeliveryStatus, NotificationOutbox
from models.settings import Settings, get_settings
from models.ticket import ActorRef
from store import notifications, people

log = logging.getLogger(__name__)

CONFIG_ERROR = "NotificationConfigInvalid"
# Inbox rows are delivered by notify.send itself; the loop takes one only if it is still
# pending this long after it was written (the activity failed and was not retried).
INBOX_FALLBACK = timedelta(seconds=60)

# --- configuration (the worker calls configure(settings) at start) ---


@dataclass
class _Config:
    settings: Settings | None = None
    channels: Mapping[Channel, NotificationChannel] | None = None


_config = _Config()


def configure(
    settings: Settings | None = None, *, channels: Mapping[Channel, NotificationChannel] | None = None
) -> None:
    """Install the settings (and, in tests, adapters: only the inbox's is used by ``notify.send``)
    the activity uses; ``configure()`` resets."""
    global _config
    _config = _Config(settings, channels)


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
                "next_attempt_at": now + INBOX_FALLBACK if d.channel is Channel.INBOX else now,
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


# --- the activity ---


def _threshold(settings: Settings) -> Decimal:
    try:
        return Decimal(settings.notify_amount_threshold)
    except InvalidOperation as exc:
        raise ApplicationError(
            f"TICKETFLOW_NOTIFY_AMOUNT_THRESHOLD is not a decimal: {settings.notify_amount_threshold!r}",
            type=CONFIG_ERROR,
        ) from exc


async def deliver_inline(db: Database, row: NotificationOutbox, inbox: NotificationChannel) -> DeliveryOutcome:
    """An inbox row, now. The inbox item is unique by ``dedup_key``, so no claim is needed: a
    repeat (a retry, the loop's fallback) adds nothing. The database failing raises (the
    activity is retried); only a permanent refusal (no actor) is recorded as failed."""
    if row.status == DeliveryStatus.SENT:
        return _outcome(row, "already_sent")
    if row.status == DeliveryStatus.FAILED:
        return _outcome(row, "failed", row.last_error)
    try:
        await inbox.send(message_of(row))
    except DeliveryError as exc:
        if not exc.permanent:
            raise
        async with db.engine.begin() as conn:
            await notifications.finish(
                conn, row.id, status=DeliveryStatus.FAILED.value, last_error=str(exc)[:2000], attempts=row.attempts + 1
            )
        metrics.NOTIFICATIONS_FAILED.labels(row.channel, "true").inc()
        return _outcome(row, "failed", str(exc), row.attempts + 1)
    async with db.engine.begin() as conn:
        fresh = await notifications.mark_sent(conn, row.id, datetime.now(UTC))
    if not fresh:
        return _outcome(row, "already_sent")
    metrics.NOTIFICATIONS_SENT.labels(row.channel).inc()  # once: only the attempt that marked it counts
    return _outcome(row, "sent", None, row.attempts + 1)


def _external(row: NotificationOutbox) -> DeliveryOutcome:
    """Where an email / SMS / IM row stands: the loop sends it."""
    if row.status == DeliveryStatus.SENT:
        return _outcome(row, "already_sent")
    if row.status == DeliveryStatus.FAILED:
        return _outcome(row, "failed", row.last_error)
    return _outcome(row, "queued", row.last_error)


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
    queued = {Channel(r.channel) for r in rows if r.channel != Channel.INBOX and r.status == DeliveryStatus.PENDING}
    if queued:
        wake(queued)  # the rows are committed: this process's lanes send them now
    inbox = (_config.channels or {}).get(Channel.INBOX) or InboxChannel(db)
    gate = asyncio.Semaphore(8)

    async def one(row: NotificationOutbox) -> DeliveryOutcome:
        if row.channel != Channel.INBOX:
            return _external(row)
        async with gate:
            return await deliver_inline(db, row, inbox)

    done = await asyncio.gather(*(one(r) for r in rows), return_exceptions=True)
    for d in done:
        if isinstance(d, BaseException):
            raise d  # the database: Temporal retries the activity (rows and inbox items are idempotent)
    outcomes = [d for d in done if isinstance(d, DeliveryOutcome)]
    return NotifyResult(
        dedup_key=req.dedup_key,
        channels=list(route.channels),
        deliveries=[*outcomes, *skipped],
        sent=sum(o.status == "sent" for o in outcomes),
        already_sent=sum(o.status == "already_sent" for o in outcomes),
        queued=sum(o.status == "queued" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
        skipped=len(skipped),
    )


# --- the delivery loop ---

# The running loops of this process, woken by notify.send (weak: a loop that ended is gone).
_loops: "weakref.WeakSet[Deliverer]" = weakref.WeakSet()


def wake(channels: Iterable[Channel]) -> None:
    """Rows of ``channels`` are due now: every delivery loop of this process looks at once."""
    wanted = set(channels)
    for loop in list(_loops):
        loop.wake(wanted)


class Deliverer:
    """Sends due outbox rows, one lane per channel. ``clock`` lets tests set the time."""

    def __init__(
        self,
        db: Database,
        settings: NotifySettings,
        channels: Mapping[Channel, NotificationChannel],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db, self.settings, self.channels = db, settings, channels
        self.clock = clock or (lambda: datetime.now(UTC))
        self._wakes = {c: asyncio.Event() for c in channels}
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self, channels: Collection[Channel]) -> None:
        events = [e for c, e in self._wakes.items() if c in channels]
        running = self._loop
        if running is None:
            return
        try:
            same = asyncio.get_running_loop() is running
        except RuntimeError:
            same = False
        for event in events:
            if same:
                event.set()
            else:  # an activity on another thread (a sync activity executor)
                running.call_soon_threadsafe(event.set)

    # --- one row ---

    async def deliver(self, row: NotificationOutbox) -> bool:
        """Claim, send and record one row; False if another sender has it or it is done. Never raises."""
        s = self.settings
        try:
            async with self.db.engine.begin() as conn:
                attempts = await notifications.claim(conn, row.id, self.clock(), s.notify_lease_s)
        except Exception:  # noqa: BLE001 - the database away: the row stays due, the next pass tries
            log.exception("notifications: could not claim outbox row %s", row.id)
            return False
        if attempts is None:
            return False
        channel = Channel(row.channel)
        adapter = self.channels.get(channel)
        try:
            if adapter is None:
                raise DeliveryError(f"{channel.value} is not configured on this worker")
            async with asyncio.timeout(s.notify_send_timeout_s):
                await adapter.send(message_of(row))
        except TimeoutError:
            await self._failed(
                row, DeliveryError(f"{channel.value}: no answer within {s.notify_send_timeout_s:g} s"), attempts
            )
            return True
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
            await self._failed(row, exc, attempts)
            return True
        metrics.NOTIFICATIONS_SENT.labels(row.channel).inc()
        try:
            async with self.db.engine.begin() as conn:
                now = self.clock()
                await notifications.finish(
                    conn, row.id, status=DeliveryStatus.SENT.value, sent_at=now, last_error=None, updated_at=now
                )
        except Exception:  # noqa: BLE001 - sent but not marked: sent again after the lease (same delivery id)
            log.exception("notifications: outbox row %s was sent but could not be marked", row.id)
        return True

    async def _failed(self, row: NotificationOutbox, exc: Exception, attempts: int) -> None:
        s, now = self.settings, self.clock()
        error = failure_text(exc, DeliveryError)
        give_up = (isinstance(exc, DeliveryError) and exc.permanent) or attempts >= s.notify_max_attempts
        delay = retry_delay(s.notify_backoff_s, s.notify_backoff_max_s, attempts - 1)
        metrics.NOTIFICATIONS_FAILED.labels(row.channel, "true" if give_up else "false").inc()
        log.warning(
            "notification %s (%s %s) attempt %d failed%s: %s",
            row.id,
            row.channel,
            row.event,
            attempts,
            " — given up" if give_up else "",
            error,
        )
        try:
            async with self.db.engine.begin() as conn:
                await notifications.finish(
                    conn,
                    row.id,
                    status=(DeliveryStatus.FAILED if give_up else DeliveryStatus.PENDING).value,
                    last_error=error[:2000],
                    next_attempt_at=now + timedelta(seconds=delay),
                    updated_at=now,
                )
        except Exception:  # noqa: BLE001 - the lease runs out and the row is tried again
            log.exception("notifications: could not record the failure of outbox row %s", row.id)

    async def _due(self, channel: Channel, limit: int, skip: Collection[int] = ()) -> list[NotificationOutbox]:
        rows, _ = await self._look(channel, limit, skip, upcoming=False)
        return rows

    async def _look(
        self, channel: Channel, limit: int, skip: Collection[int], *, upcoming: bool
    ) -> tuple[list[NotificationOutbox], datetime | None]:
        """The rows due now and (``upcoming``, when they do not fill ``limit``) when the next
        backoff ends."""
        now = self.clock()
        async with self.db.engine.connect() as conn:
            rows = await notifications.due(conn, channel.value, now, limit, skip)
            following = (
                await notifications.next_due(conn, channel.value, now) if upcoming and len(rows) < limit else None
            )
            await conn.rollback()
        return rows, following

    # --- passes (tests, ops) ---

    async def pass_once(self, channel: Channel) -> int:
        """Send the rows of one channel due now (at most ``notify_concurrency`` at once); how many moved."""
        gate = asyncio.Semaphore(self.settings.notify_concurrency)

        async def one(row: NotificationOutbox) -> bool:
            async with gate:
                return await self.deliver(row)

        rows = await self._due(channel, self.settings.notify_concurrency * 4)
        return sum(await asyncio.gather(*(one(r) for r in rows)))

    async def deliver_due(self) -> int:
        """Every channel at once, pass after pass, until nothing more is due now."""
        return await until_dry(self.pass_once, self.channels)

    # --- the loop ---

    async def lane(self, channel: Channel, stop: asyncio.Event) -> None:
        """Keep up to ``notify_concurrency`` sends of ``channel`` going: a slot that frees up (a
        send done, failed or timed out) takes the next due row at once."""
        s, wake = self.settings, self._wakes[channel]
        sending: dict[int, asyncio.Task[bool]] = {}

        def done(row_id: int, task: asyncio.Task[bool]) -> None:
            sending.pop(row_id, None)
            wake.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("notifications: the %s lane lost a send", channel.value, exc_info=task.exception())

        while not stop.is_set():
            wake.clear()
            free = s.notify_concurrency - len(sending)
            rows: list[NotificationOutbox] = []
            following: datetime | None = None
            if free > 0:
                try:
                    rows, following = await self._look(channel, free, set(sending), upcoming=True)
                except Exception:  # noqa: BLE001 - the database away for a moment must not end the lane
                    log.exception("notifications: the %s lane failed a pass", channel.value)
            for row in rows:
                assert row.id is not None
                task = asyncio.create_task(self.deliver(row), name=f"notify-{channel.value}-{row.id}")
                sending[row.id] = task
                task.add_done_callback(functools.partial(done, row.id))
            if free > 0 and len(rows) == free:
                continue  # every free slot took a row: more may be due
            # Until woken (a new row, a free slot, stop), the next backoff ends, or the poll.
            pause = s.notify_poll_s
            if following is not None:
                pause = min(pause, max(0.01, (following - self.clock()).total_seconds()))
            try:
                await asyncio.wait_for(wake.wait(), pause)
            except TimeoutError:
                pass
        await asyncio.gather(*sending.values(), return_exceptions=True)  # each bounded by the send timeout

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        _loops.add(self)

        async def stopper() -> None:
            await stop.wait()
            for event in self._wakes.values():
                event.set()

        watch = asyncio.create_task(stopper())
        try:
            await asyncio.gather(*(self.lane(c, stop) for c in self.channels))
        finally:
            _loops.discard(self)
            watch.cancel()


async def run(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    ns: NotifySettings | None = None,
    channels: Mapping[Channel, NotificationChannel] | None = None,
) -> None:
    """The worker's background task: deliver notifications until ``stop`` is set."""
    adapters = channels or build_channels(settings, db)
    log.info("notifications: delivering on %s", ", ".join(c.value for c in adapters))
    await Deliverer(db, ns or NotifySettings(), adapters).run(stop)
