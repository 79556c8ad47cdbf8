"""The delivery loop of customer messages: a small background task of the worker that sends
the ``customer_message`` rows the projection wrote (``store/customer_messages.py``).

Why a loop and not an activity: the rows are written in the projection's transaction, so the
ticket workflow does nothing more than before — no activity, no timer, no history event per
message — and a channel that is down or slow delays only its own messages, never a ticket.

- **One lane per channel** (SMS, email, WeChat, webhook), each polling its own due rows: a slow
  SMS gateway never holds up email. Within a lane up to ``customer_message_concurrency`` sends
  run at once, each bounded in time.
- **In order per ticket**: a row is due only when no earlier row of the same ticket and
  recipient on that channel is still pending.
- **Once**: a row is claimed with a lease (a conditional update: two workers never both send
  it), sent with its delivery id as ``Idempotency-Key`` / ``Message-ID`` / ``client_msg_id``, and
  marked ``sent``. On failure it backs off (doubling, with jitter, up to a cap) and is given up
  as ``failed`` after ``customer_message_max_attempts`` or a permanent refusal.
- **Quiet hours**: on SMS, WeChat and webhook a row due in the region's quiet hours is held
  until they end (``held_until``), except ``on_the_way``, which goes at once and takes the
  held messages before it along.

The worker starts it with ``run(db, settings, stop)``; tests drive ``Deliverer.deliver_due``.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from activities.channels import DeliveryError, NotificationChannel, OutboundMessage
from activities.channels.email import EmailChannel
from activities.channels.sms import SmsChannel
from activities.channels.webhook import WebhookChannel
from activities.channels.wechat_template import WechatTemplateChannel
from activities.outbox import failure_text, retry_delay, until_dry
from domain import message_templates as rules
from models.customer_message_tables import CustomerMessage
from models.customer_messages import QUIET_CHANNELS, CustomerChannel, CustomerMessageSettings, MessageStatus
from models.db import Database
from models.notifications import Channel
from models.settings import Settings
from store import customer_messages as store

log = logging.getLogger(__name__)

# The notification adapters' channel value for each customer channel (their messages carry one).
ADAPTER_CHANNEL = {
    CustomerChannel.SMS: Channel.SMS,
    CustomerChannel.EMAIL: Channel.EMAIL,
    CustomerChannel.WECHAT: Channel.IM,
    CustomerChannel.WEBHOOK: Channel.IM,
}


def build_channels(settings: Settings, cm: CustomerMessageSettings) -> dict[CustomerChannel, NotificationChannel]:
    """An adapter for every channel that is configured."""
    timeout = cm.customer_http_timeout_s
    out: dict[CustomerChannel, NotificationChannel] = {}
    if cm.customer_email:
        out[CustomerChannel.EMAIL] = EmailChannel(settings)
    if cm.customer_sms_url and cm.customer_sms_secret:
        out[CustomerChannel.SMS] = SmsChannel(cm.customer_sms_url, cm.customer_sms_secret.get_secret_value(), timeout)
    if cm.customer_wechat_url and cm.customer_wechat_secret:
        secret = cm.customer_wechat_secret.get_secret_value()
        out[CustomerChannel.WECHAT] = WechatTemplateChannel(cm.customer_wechat_url, secret, timeout)
    if cm.customer_webhook_url and cm.customer_webhook_secret:
        hook = settings.model_copy(
            update={
                "webhook_url": cm.customer_webhook_url,
                "webhook_secret": cm.customer_webhook_secret,
                "webhook_timeout_s": timeout,
            }
        )
        out[CustomerChannel.WEBHOOK] = WebhookChannel(hook)
    return out


def message_of(row: CustomerMessage) -> OutboundMessage:
    channel = CustomerChannel(row.channel)
    return OutboundMessage(
        delivery_id=row.delivery_id,
        dedup_key=store.idempotency_key(row.ticket_id, row.seq, row.kind, row.channel),
        channel=ADAPTER_CHANNEL[channel],
        recipient=row.recipient,
        actor_id=None,
        ticket_id=row.ticket_id,
        event=row.kind,
        subject=row.subject,
        body=row.body,
        # the webhook's JSON carries these as they are; "channel" names the customer channel
        data={
            **row.data,
            "channel": channel.value,
            "kind": row.kind,
            "customer_id": row.customer_id,
            "language": row.language,
        },
    )


class Deliverer:
    """Sends due rows, one lane per channel. ``clock`` lets tests set the time of day."""

    def __init__(
        self,
        db: Database,
        settings: CustomerMessageSettings,
        channels: Mapping[CustomerChannel, NotificationChannel],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db, self.settings, self.channels = db, settings, channels
        self.clock = clock or (lambda: datetime.now(UTC))
        self._zones: dict[str, ZoneInfo] = {}

    # --- one pass ---

    async def pass_once(self, channel: CustomerChannel) -> int:
        """Send (or hold, or back off) the due rows of one channel; how many moved on."""
        s, now = self.settings, self.clock()
        async with self.db.engine.connect() as conn:
            rows = await store.due(conn, channel.value, now, s.customer_message_concurrency * 4)
            if channel in QUIET_CHANNELS and any(r.region not in self._zones for r in rows):
                self._zones = await store.region_timezones(conn)  # a small table: read again for a new region
            await conn.rollback()
        gate = asyncio.Semaphore(s.customer_message_concurrency)

        async def one(row: CustomerMessage) -> bool:
            async with gate:
                return await self.deliver(row, now)

        return sum(await asyncio.gather(*(one(r) for r in rows)))

    async def deliver(self, row: CustomerMessage, now: datetime) -> bool:
        s, channel = self.settings, CustomerChannel(row.channel)
        if channel in QUIET_CHANNELS and not row.quiet_exempt:
            tz = self._zones.get(row.region, ZoneInfo("UTC"))
            until = rules.quiet_until(now, tz, s.quiet_hours(row.region))
            if until is not None:
                async with self.db.engine.begin() as conn:
                    return await store.hold(conn, row.id, until, now)
        async with self.db.engine.begin() as conn:
            attempts = await store.claim(conn, row.id, now, s.customer_message_lease_s)
        if attempts is None:  # another sender has it, or it is done
            return False
        adapter = self.channels.get(channel)
        try:
            if adapter is None:
                raise DeliveryError(f"{channel.value} is not configured")
            async with asyncio.timeout(min(s.customer_message_lease_s / 2, 60.0)):
                await adapter.send(message_of(row))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
            await self._failed(row, exc, attempts, now)
            return True
        async with self.db.engine.begin() as conn:
            await store.finish(
                conn,
                row.id,
                status=MessageStatus.SENT.value,
                sent_at=self.clock(),
                reason=None,
                updated_at=self.clock(),
            )
        return True

    async def _failed(self, row: CustomerMessage, exc: Exception, attempts: int, now: datetime) -> None:
        s = self.settings
        error = failure_text(exc, DeliveryError)
        give_up = (isinstance(exc, DeliveryError) and exc.permanent) or attempts >= s.customer_message_max_attempts
        delay = retry_delay(s.customer_message_backoff_s, s.customer_message_backoff_max_s, attempts - 1)
        log.warning(
            "customer message %s (%s %s) attempt %d failed%s: %s",
            row.id,
            row.kind,
            row.channel,
            attempts,
            " — given up" if give_up else "",
            error,
        )
        async with self.db.engine.begin() as conn:
            await store.finish(
                conn,
                row.id,
                status=(MessageStatus.FAILED if give_up else MessageStatus.PENDING).value,
                reason=error[:2000],
                next_attempt_at=now + timedelta(seconds=delay),
                updated_at=now,
            )

    async def deliver_due(self) -> int:
        """Every channel at once, pass after pass, until nothing more is due now (tests, ops)."""
        return await until_dry(self.pass_once, self.channels)

    # --- the loop ---

    async def lane(self, channel: CustomerChannel, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                moved = await self.pass_once(channel)
            except Exception:  # noqa: BLE001 - the database away for a moment must not end the loop
                log.exception("customer messages: the %s lane failed a pass", channel.value)
                moved = 0
            if not moved:
                try:
                    await asyncio.wait_for(stop.wait(), self.settings.customer_message_poll_s)
                except TimeoutError:
                    pass

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self.lane(c, stop) for c in self.channels))


LINK_ISSUER = "customer-messages"  # who the tracking links in messages are issued by (audit log)


def tracking_links(link_for: Callable[..., Awaitable[str]], base_url: str) -> store.TrackingLink:
    """The tracking-link maker for ``store.customer_messages.configure``, from the tracking
    service's ``link_for(session, ticket_id, base_url=, created_by=)``."""

    async def make(session: AsyncSession, ticket_id: str) -> str | None:
        return await link_for(session, ticket_id, base_url=base_url, created_by=LINK_ISSUER)

    return make


async def run(db: Database, settings: Settings, stop: asyncio.Event, cm: CustomerMessageSettings | None = None) -> None:
    """The worker's background task: deliver customer messages until ``stop`` is set."""
    cm = cm or store.current_settings()
    channels = build_channels(settings, cm)
    log.info("customer messages: delivering on %s", ", ".join(c.value for c in channels) or "no channel")
    await Deliverer(db, cm, channels).run(stop)
