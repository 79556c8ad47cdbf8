"""The delivery loop of subscriptions: a background task of the worker that sends the
``webhook_delivery`` rows the projection wrote (``store/subscriptions.py``).

Why a loop and not an activity: the rows are written in the projection's transaction, so a
ticket's workflow does nothing more for its subscribers — and a subscriber that is down or slow
delays only its own deliveries, never a ticket nor another subscriber.

- **One lane per subscription**: a pass finds the active subscriptions with due rows and starts
  a lane (a task) for each one not already running. A lane sends up to
  ``webhook_lane_concurrency`` rows at once (heads of different tickets), each bounded in time.
- **In order per ticket**: a row is due only when no earlier row of the same ticket and
  subscription is still open (pending or failed).
- **At least once**: a row is claimed with a lease (two workers never both send it), sent with
  its event id, and marked ``delivered`` on a 2xx. Otherwise it backs off (doubling, with
  jitter, up to a cap) and, older than ``webhook_give_up_after_s`` (6 h), is given up as
  ``dead``; a 410 Gone gives it up at once. After ``webhook_pause_after`` failures in a row the
  subscription is paused and its owner finds a notification in their inbox.
- Signed as inbound requests are (``domain/inbound_auth.py``): ``X-Ticketflow-Signature: v1=<hex
  HMAC-SHA256(secret, "<timestamp>.<body>")>`` with ``X-Ticketflow-Timestamp``.

The worker starts it with ``run(db, settings, stop)``; tests drive ``Sender.deliver_due``.
"""

import asyncio
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from activities.outbox import failure_text, retry_delay
from domain import subscriptions as rules
from domain.inbound_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from models.db import Database
from models.settings import Settings
from models.subscription_tables import Subscription, WebhookDelivery
from models.subscriptions import DeliveryStatus, SubscriptionState, WebhookSettings
from store import notifications
from store import subscriptions as store

log = logging.getLogger(__name__)

GONE = 410  # the receiver says this endpoint is no more: no retry


class Refused(Exception):
    """A target the sender will not call (a private address in production)."""


def body_bytes(row: WebhookDelivery) -> bytes:
    raw = row.body.get(store.RAW_BODY)
    if isinstance(raw, str):
        return raw.encode()
    return json.dumps(row.body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def headers(sub: Subscription, row: WebhookDelivery, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Ticketflow-Webhooks/1",
        SIGNATURE_HEADER: sign(sub.secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        "X-Ticketflow-Event": row.event,
        "X-Ticketflow-Event-Id": row.event_id,
        "Idempotency-Key": row.event_id,
        "X-Ticketflow-Ticket": row.ticket_id,
        "X-Ticketflow-Seq": str(row.seq),
        "X-Ticketflow-Subscription": sub.id,
    }


async def check_resolved(url: str) -> None:
    """Outside development: every address the host resolves to must be public (a name that
    points inside the network is refused like an IP literal)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        address = str(info[4][0])
        if rules.private_address(address) or ipaddress.ip_address(address).is_loopback:
            raise Refused(f"{host} resolves to a private address")


class Sender:
    """Sends due deliveries, one lane per subscription. ``transport`` for tests that need one."""

    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        development: bool,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db, self.settings, self.development = db, settings, development
        self.clock = clock or (lambda: datetime.now(UTC))
        self.http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_s, transport=transport, follow_redirects=False, trust_env=False
        )
        self.lanes: dict[str, asyncio.Task[int]] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- one subscription ---

    async def lane(self, subscription_id: str) -> int:
        """Send this subscription's due rows until none is due now (or it is paused)."""
        total = 0
        gate = asyncio.Semaphore(self.settings.webhook_lane_concurrency)
        while True:
            now = self.clock()
            async with self.db.engine.connect() as conn:
                sub = await store.subscription(conn, subscription_id)
                rows = (
                    []
                    if sub is None
                    else await store.due(conn, subscription_id, now, self.settings.webhook_lane_concurrency * 4)
                )
                await conn.rollback()
            if sub is None or sub.state != SubscriptionState.ACTIVE.value or not rows:
                return total

            async def one(row: WebhookDelivery, sub: Subscription = sub) -> bool:
                async with gate:
                    return await self.deliver(sub, row)

            moved = sum(await asyncio.gather(*(one(r) for r in rows)))
            total += moved
            if not moved:
                return total

    async def deliver(self, sub: Subscription, row: WebhookDelivery) -> bool:
        s, now = self.settings, self.clock()
        async with self.db.engine.begin() as conn:
            attempts = await store.claim(conn, row.id, now, s.webhook_lease_s)
        if attempts is None:
            return False
        body = body_bytes(row)
        code: int | None = None
        try:
            if not self.development:
                await check_resolved(sub.url)
            async with (
                asyncio.timeout(s.webhook_timeout_s + 1),
                self.http.stream(
                    "POST", sub.url, content=body, headers=headers(sub, row, body, int(time.time()))
                ) as answer,
            ):
                code = answer.status_code  # the answer's body is never read: only its status counts
            if not 200 <= code < 300:
                raise httpx.HTTPStatusError(f"answered {code}", request=answer.request, response=answer)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the row
            await self._failed(sub, row, exc, code, now)
            return True
        async with self.db.engine.begin() as conn:
            await store.finish(
                conn,
                row.id,
                status=DeliveryStatus.DELIVERED.value,
                response_code=code,
                last_error=None,
                delivered_at=self.clock(),
            )
            await store.succeeded(conn, sub.id)
        return True

    async def _failed(
        self, sub: Subscription, row: WebhookDelivery, exc: Exception, code: int | None, now: datetime
    ) -> None:
        s = self.settings
        error = failure_text(exc, httpx.HTTPStatusError, Refused)
        give_up = (
            code == GONE
            or isinstance(exc, Refused)
            or now - row.created_at > timedelta(seconds=s.webhook_give_up_after_s)
        )
        delay = retry_delay(s.webhook_backoff_s, s.webhook_backoff_max_s, max(row.attempts, 0))
        log.warning(
            "webhook %s to %s attempt failed%s: %s", row.event_id, sub.id, " — given up" if give_up else "", error
        )
        async with self.db.engine.begin() as conn:
            await store.finish(
                conn,
                row.id,
                status=(DeliveryStatus.DEAD if give_up else DeliveryStatus.FAILED).value,
                last_error=error[:2000],
                response_code=code,
                next_attempt_at=now + timedelta(seconds=delay),
            )
            paused = await store.failed_streak(conn, sub.id, s.webhook_pause_after, now)
        if paused:
            await self._tell_owner(sub, error, now)

    async def _tell_owner(self, sub: Subscription, error: str, now: datetime) -> None:
        """The owner's inbox (the notification outbox's in-app channel), once per pause."""
        log.warning("subscription %s paused after %d failures", sub.id, self.settings.webhook_pause_after)
        await notifications.deliver_to_inbox(
            self.db,
            {
                "dedup_key": f"subscription-paused|{sub.id}|{now.isoformat()}",
                "actor_id": sub.owner_id,
                "ticket_id": "",
                "region": "",
                "event": "subscription_paused",
                "title": f"Webhook subscription {sub.id} paused",
                "body": (
                    f"Deliveries to {sub.url} failed {self.settings.webhook_pause_after} times in a row "
                    f"(last: {error[:300]}). Fix the receiver, then POST /subscriptions/{sub.id}/resume."
                ),
                "link": f"/subscriptions/{sub.id}/deliveries",
                "created_at": now,
            },
        )

    # --- every subscription ---

    async def start_lanes(self) -> int:
        """A lane for each active subscription with due rows that has none running."""
        async with self.db.engine.connect() as conn:
            busy = await store.busy_subscriptions(conn, self.clock())
            await conn.rollback()
        started = 0
        for sub_id in busy:
            if sub_id not in self.lanes or self.lanes[sub_id].done():
                self.lanes[sub_id] = asyncio.create_task(self.lane(sub_id))
                started += 1
        return started

    async def deliver_due(self) -> int:
        """Every subscription at once, until nothing more is due now (tests, ops)."""
        total = 0
        while await self.start_lanes():
            moved = sum(await asyncio.gather(*self.lanes.values()))
            self.lanes.clear()
            total += moved
            if not moved:
                break
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.start_lanes()
            except Exception:  # noqa: BLE001 - the database away for a moment must not end the loop
                log.exception("webhooks: a pass failed")
            for sub_id, task in list(self.lanes.items()):
                if task.done():
                    del self.lanes[sub_id]
                    if not task.cancelled() and task.exception() is not None:
                        log.error("webhooks: lane %s failed", sub_id, exc_info=task.exception())
            try:
                await asyncio.wait_for(stop.wait(), self.settings.webhook_poll_s)
            except TimeoutError:
                pass
        await asyncio.gather(*self.lanes.values(), return_exceptions=True)


async def run(db: Database, settings: Settings, stop: asyncio.Event, ws: WebhookSettings | None = None) -> None:
    """The worker's background task: deliver webhooks until ``stop`` is set."""
    sender = Sender(db, ws or WebhookSettings(), development=settings.environment == "development")
    try:
        await sender.run(stop)
    finally:
        await sender.aclose()
