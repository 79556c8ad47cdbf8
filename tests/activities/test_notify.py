"""notify.send and its delivery loop against real receivers: a local aiosmtpd SMTP server and a
local HTTP webhook receiver (uvicorn) that checks the HMAC signature. notify.send writes the
outbox and the inbox and queues the rest; the loop (``activities.notify.Deliverer``) sends it.
Every notification must reach each receiver exactly once across activity retries, loop retries
and concurrent senders; routing rules are tested as pure code. (The lanes' independence — a dead
or hung channel delays nothing else — is tests/activities/test_notify_lanes.py.)"""

import asyncio
import email
import email.policy
import hashlib
import hmac
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import notify
from activities.channels import build_channels
from activities.channels.email import message_id
from activities.channels.webhook import sign, verify_signature
from domain import notify_rules as rules
from models.db import Database, upsert_statement
from models.notifications import Channel, NotifyInput, NotifyResult, NotifySettings, TicketBrief, Urgency
from models.notifications_tables import NotificationContact, NotificationInbox, NotificationOutbox
from models.settings import Settings

SECRET = "test-secret-密钥-long-enough-for-the-32-char-minimum"
LI = "li.wei@plant.test"
LI_PHONE = "+8613800000001"
ZHOU = "zhou.qiang@plant.test"
FINANCE = ["finance@plant.test"]
LEGAL = ["legal@plant.test"]


# --- local receivers ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self._lock:
            return [m for rcpts, m in self.messages if address in rcpts]


@dataclass
class Call:
    delivery: str
    idempotency_key: str
    valid: bool
    status: int
    json: dict
    timestamp: str = ""
    signature: str = ""
    raw: bytes = b""


@dataclass
class Receiver:
    """The webhook provider: verifies each request, answers scripted statuses (then 200)."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    async def hook(self, request: Request) -> JSONResponse:
        body = await request.body()
        h = request.headers
        valid = verify_signature(SECRET, h.get("x-ticketflow-timestamp", ""), body, h.get("x-ticketflow-signature"))
        status = (self.script.pop(0) if self.script else 200) if valid else 401
        self.calls.append(
            Call(
                h.get("x-ticketflow-delivery", ""),
                h.get("idempotency-key", ""),
                valid,
                status,
                await request.json(),
                h.get("x-ticketflow-timestamp", ""),
                h.get("x-ticketflow-signature", ""),
                body,
            )
        )
        return JSONResponse({"ok": status < 300}, status_code=status)

    def ok(self, to: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.status == 200 and (to is None or c.json["to"] == to)]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    port = free_port()
    app = Starlette(routes=[Route("/hook", rec.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def settings(db: Database, database_url: str, mailbox, receiver: Receiver) -> AsyncIterator[Settings]:
    await give_up_pending(db)  # the loops below send this test's rows only
    s = Settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=mailbox[1],
        smtp_from="Ticketflow 工单 <ticketflow@plant.test>",
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_timeout_s=5,
        notify_amount_threshold="100000",
        finance_cc=FINANCE,
        legal_cc=LEGAL,
    )
    notify.configure(s)
    await set_contact(db, "eng-li", email=LI, phone=LI_PHONE, im_user="wecom-liwei")
    await set_contact(db, "sup-zhou", email=ZHOU, phone=None, im_user=None)
    yield s
    notify.configure()
    await give_up_pending(db)


async def give_up_pending(db: Database) -> None:
    """Rows still pending (an earlier test's, or this one's) are given up: tests run one at a
    time, so a loop a test starts sends that test's rows only."""
    async with db.engine.begin() as conn:
        await conn.execute(
            update(NotificationOutbox)
            .where(col(NotificationOutbox.status) == "pending")
            .values(status="failed", last_error="given up by the tests", claimed_until=None)
        )


# The loop in these tests; a pass after a backoff runs ``later`` (no test waits for one).
LOOP = NotifySettings(notify_backoff_s=5, notify_backoff_max_s=20, notify_send_timeout_s=10, notify_lease_s=60)


async def deliver(db: Database, settings: Settings, later: timedelta = timedelta(0), **loop: Any) -> int:
    """One run of the delivery loop over what is due (``later``: as if that much later, when
    every backoff has ended); how many sends it made."""
    deliverer = notify.Deliverer(
        db, LOOP.model_copy(update=loop), build_channels(settings, db), clock=lambda: datetime.now(UTC) + later
    )
    return await deliverer.deliver_due()


async def set_contact(db: Database, actor_id: str, **values) -> None:
    row = {"actor_id": actor_id, "updated_at": datetime.now(UTC), **values}
    stmt = upsert_statement(db.engine.dialect.name, NotificationContact.__table__).values(row)
    stmt = stmt.on_conflict_do_update(index_elements=["actor_id"], set_={k: stmt.excluded[k] for k in values})
    async with db.engine.begin() as conn:
        await conn.execute(stmt)


def ticket_id() -> str:
    return f"N{uuid.uuid4().hex[:12].upper()}"


def notice(event: str, urgency: Urgency, recipients: list[str], **kw) -> NotifyInput:
    tid = kw.pop("tid", None) or ticket_id()
    return NotifyInput(
        dedup_key=f"{tid}:{kw.pop('node', 'node1')}:{event}",
        event=event,
        urgency=urgency,
        ticket=TicketBrief(
            id=tid,
            title="3号压缩机过热 Compressor #3 overheating",
            region="east",
            priority="high",
            status="assigned",
            link=f"https://ticketflow.test/tickets/{tid}",
        ),
        recipients=recipients,
        **kw,
    )


async def outbox(db: Database, base_key: str) -> dict[tuple[str, str], NotificationOutbox]:
    async with db.session() as s:
        rows = await s.exec(select(NotificationOutbox).where(col(NotificationOutbox.base_key) == base_key))
        return {(r.channel, r.recipient): r for r in rows}


async def inbox(db: Database, tid: str) -> list[NotificationInbox]:
    async with db.session() as s:
        return list(await s.exec(select(NotificationInbox).where(col(NotificationInbox.ticket_id) == tid)))


# --- routing (pure) ---


@pytest.mark.parametrize(
    ("event", "urgency", "channels"),
    [
        ("reminder", Urgency.LOW, ("inbox",)),
        ("reminder", Urgency.NORMAL, ("inbox",)),
        ("resolved", Urgency.NORMAL, ("inbox",)),
        ("assigned", Urgency.NORMAL, ("inbox", "email")),
        ("approval_needed", Urgency.LOW, ("inbox", "email")),
        ("reminder", Urgency.HIGH, ("inbox", "email", "im")),
        ("reminder", Urgency.CRITICAL, ("inbox", "email", "sms")),
        ("breach", Urgency.NORMAL, ("inbox", "email", "sms")),
        ("escalation", Urgency.LOW, ("inbox", "email", "sms")),
        ("escalation", Urgency.HIGH, ("inbox", "email", "im", "sms")),
        ("low_stock", Urgency.NORMAL, ("inbox", "email")),
        ("something_new", Urgency.NORMAL, ("inbox",)),
    ],
)
def test_urgency_and_event_choose_channels(event: str, urgency: Urgency, channels: tuple[str, ...]):
    assert tuple(c.value for c in rules.route(event, urgency, None, Decimal("100000")).channels) == channels


@pytest.mark.parametrize(
    ("event", "amount", "groups"),
    [
        ("approval_needed", None, ()),
        ("approval_needed", "100000", ()),  # at the threshold: not above it
        ("approval_needed", "100000.01", ("finance", "legal")),
        ("contract", "250000", ("finance", "legal")),
        ("resolved", "250000", ("finance",)),
        ("assigned", "99999.99", ()),
    ],
)
def test_amount_above_threshold_copies_finance_and_legal_for_approvals(event, amount, groups):
    r = rules.route(event, Urgency.NORMAL, Decimal(amount) if amount else None, Decimal("100000"))
    assert r.cc_groups == groups


def test_plan_addresses_each_channel_once_and_reports_what_it_skips():
    wanted = rules.parse_recipients(
        ["eng-li", "actor:sup-zhou", "Finance@Plant.test", "tel:+86 138-0000-0002", "eng-li"]
    )
    assert wanted.actor_ids == ("eng-li", "sup-zhou")
    assert wanted.emails == ("Finance@Plant.test",) and wanted.phones == ("+8613800000002",)
    r = rules.route("escalation", Urgency.HIGH, Decimal("200000"), Decimal("100000"))
    contacts = [rules.Contact("eng-li", LI, LI_PHONE, "wecom-liwei"), rules.Contact("sup-zhou", ZHOU)]
    p = rules.plan(r, contacts, wanted, {"finance": FINANCE, "legal": LEGAL}, webhook_enabled=True)
    got = [(d.channel.value, d.recipient, d.reason) for d in p.deliveries]
    assert got == [
        ("inbox", "eng-li", "to"),
        ("email", LI, "to"),
        ("im", "wecom-liwei", "to"),
        ("sms", LI_PHONE, "to"),
        ("inbox", "sup-zhou", "to"),
        ("email", ZHOU, "to"),
        ("im", "sup-zhou", "to"),  # no IM user: the provider maps the actor id
        ("email", "Finance@Plant.test", "to"),  # the explicit address; the finance cc is the same mailbox
        ("sms", "+8613800000002", "to"),
    ]
    assert [(s.channel.value, s.recipient) for s in p.skipped] == [("sms", "sup-zhou")]
    off = rules.plan(r, contacts[:1], rules.Recipients(), {}, webhook_enabled=False)
    assert [d.channel.value for d in off.deliveries] == ["inbox", "email"]
    assert {s.channel.value for s in off.skipped} == {"im", "sms"}


def test_signature_helper_rejects_tampering_wrong_secret_and_stale_timestamps():
    body = '{"text":"压缩机"}'.encode()
    ts = str(int(time.time()))
    header = sign(SECRET, ts, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, ts, body, header)
    assert not verify_signature(SECRET, ts, body + b" ", header)
    assert not verify_signature("other", ts, body, header)
    assert not verify_signature(SECRET, ts, body, None)
    old = str(int(time.time()) - 3600)
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body))
    assert verify_signature(SECRET, old, body, sign(SECRET, old, body), max_age_s=None)


# --- the activity and the loop against real receivers ---


async def test_email_and_webhook_arrive_once_when_the_activity_runs_twice(db, settings, mailbox, receiver):
    box, _ = mailbox
    req = notice("breach", Urgency.CRITICAL, ["eng-li"], text="已超时 2 小时，请立即处理。")
    env = ActivityEnvironment()
    first = await env.run(notify.send_notification, req)
    assert [(d.channel, d.status) for d in first.deliveries] == [
        (Channel.INBOX, "sent"),  # at once, by the activity
        (Channel.EMAIL, "queued"),  # by the loop
        (Channel.SMS, "queued"),
    ]
    assert (first.sent, first.queued) == (1, 2)
    assert await deliver(db, settings) == 2
    second = await env.run(notify.send_notification, req)  # e.g. the reply was lost and Temporal retried
    assert (second.sent, second.already_sent, second.queued) == (0, 3, 0)
    assert await deliver(db, settings, later=timedelta(hours=1)) == 0

    mails = box.to(LI)
    assert len(mails) == 1
    mail = mails[0]
    rows = await outbox(db, req.dedup_key)
    assert mail["Message-ID"] == message_id(rows[("email", LI)].delivery_id, settings.smtp_from)
    assert (
        mail["Message-ID"] == f"<{hashlib.sha256(f'{req.dedup_key}|email|{LI}'.encode()).hexdigest()[:32]}@plant.test>"
    )
    assert "SLA breached / 已超时" in mail["Subject"] and "3号压缩机过热" in mail["Subject"]
    assert "已超时 2 小时，请立即处理。" in mail.get_content()
    assert req.ticket.link in mail.get_content()

    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call.valid and call.status == 200
    assert call.delivery == call.idempotency_key == rows[("sms", LI_PHONE)].delivery_id
    # The documented contract, computed here independently of the adapter's code:
    # delivery id = sha256("<business key>|<channel>|<recipient>")[:32] and
    # signature = "sha256=" + HMAC-SHA256(secret, "<timestamp>.<raw body>").
    assert call.delivery == hashlib.sha256(f"{req.dedup_key}|sms|{LI_PHONE}".encode()).hexdigest()[:32]
    expected = hmac.new(SECRET.encode(), f"{call.timestamp}.".encode() + call.raw, hashlib.sha256).hexdigest()
    assert call.signature == f"sha256={expected}" and abs(int(call.timestamp) - time.time()) < 60
    assert call.json["channel"] == "sms" and call.json["to"] == LI_PHONE and call.json["event"] == "breach"
    assert call.json["ticket"]["id"] == req.ticket.id and "已超时" in call.json["text"]

    [item] = await inbox(db, req.ticket.id)
    assert (item.actor_id, item.read_at) == ("eng-li", None)
    assert all(r.status == "sent" and r.attempts == 1 and r.sent_at for r in rows.values())


async def test_a_failed_webhook_is_retried_alone_and_mail_is_not_resent(db, settings, mailbox, receiver):
    box, _ = mailbox
    receiver.script = [500]  # the provider fails once
    req = notice("approval_needed", Urgency.HIGH, ["eng-li"], amount="150000.00", currency="CNY")
    env = ActivityEnvironment()
    first = await env.run(notify.send_notification, req)  # returns at once: nothing external sent yet
    assert (first.sent, first.queued, first.failed) == (1, 4, 0)
    await deliver(db, settings)

    rows = await outbox(db, req.dedup_key)
    im = rows[("im", "wecom-liwei")]
    assert (im.status, im.attempts) == ("pending", 1) and "HTTP 500" in (im.last_error or "")
    assert im.next_attempt_at > im.updated_at  # backs off
    assert {k: r.status for k, r in rows.items() if k[0] != "im"} == {
        ("inbox", "eng-li"): "sent",
        ("email", LI): "sent",
        ("email", FINANCE[0]): "sent",
        ("email", LEGAL[0]): "sent",
    }
    assert [len(box.to(a)) for a in (LI, FINANCE[0], LEGAL[0])] == [1, 1, 1]
    queued = await env.run(notify.send_notification, req)  # a repeat reports where the IM stands
    [pending] = [d for d in queued.deliveries if d.channel is Channel.IM]
    assert (pending.status, pending.attempts) == ("queued", 1) and "HTTP 500" in (pending.error or "")

    assert await deliver(db, settings, later=timedelta(minutes=1)) == 1  # the backoff is over: the IM alone
    assert [len(box.to(a)) for a in (LI, FINANCE[0], LEGAL[0])] == [1, 1, 1]  # no mail sent twice
    assert [(c.status, c.valid) for c in receiver.calls] == [(500, True), (200, True)]
    assert receiver.calls[0].delivery == receiver.calls[1].delivery == im.delivery_id
    assert len(receiver.ok()) == 1
    finance_mail = box.to(FINANCE[0])[0].get_content()
    assert "150000.00 CNY" in finance_mail and "Copy for finance" in finance_mail
    im = (await outbox(db, req.dedup_key))[("im", "wecom-liwei")]
    assert (im.status, im.attempts) == ("sent", 2)
    result = await env.run(notify.send_notification, req)
    assert (result.sent, result.already_sent, result.queued, result.failed) == (0, 5, 0, 0)


@workflow.defn(sandboxed=False)
class NotifyOnce:
    @workflow.run
    async def run(self, req: NotifyInput) -> NotifyResult:
        return await workflow.execute_activity(
            notify.send_notification,
            req,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0),
        )


async def test_the_activity_does_not_wait_for_a_failing_provider_and_the_loop_sends_once(
    db, settings, mailbox, receiver, tsenv: WorkflowEnvironment
):
    box, _ = mailbox
    receiver.script = [503, 500]  # two failed attempts, then the provider recovers
    req = notice("escalation", Urgency.NORMAL, ["eng-li"])
    client: Client = tsenv.client
    queue = f"notify-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    quick = LOOP.model_copy(update={"notify_backoff_s": 0.05, "notify_backoff_max_s": 0.2})
    loop = asyncio.create_task(notify.run(db, settings, stop, quick))  # as the worker runs it
    try:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[NotifyOnce],
            activities=[notify.send_notification],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            handle = await client.start_workflow(NotifyOnce.run, req, id=f"notify-{req.ticket.id}", task_queue=queue)
            result = await handle.result()
            assert (result.sent, result.queued) == (1, 2)  # the inbox now; email and SMS queued
            attempts = [
                e.activity_task_started_event_attributes.attempt
                async for e in handle.fetch_history_events()
                if e.HasField("activity_task_started_event_attributes")
            ]
            assert attempts == [1]  # one attempt: the provider's failures are the loop's business

        async def sms_sent() -> bool:
            return (await outbox(db, req.dedup_key))[("sms", LI_PHONE)].status == "sent"

        deadline = time.monotonic() + 10
        while not await sms_sent():
            assert time.monotonic() < deadline, "the SMS was not sent"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await loop
    assert len(box.to(LI)) == 1
    assert [c.status for c in receiver.calls] == [503, 500, 200]
    assert all(c.valid for c in receiver.calls) and len({c.delivery for c in receiver.calls}) == 1
    rows = await outbox(db, req.dedup_key)
    assert rows[("sms", LI_PHONE)].attempts == 3 and rows[("email", LI)].attempts == 1


async def test_concurrent_attempts_never_both_send(db, settings, mailbox, receiver):
    box, _ = mailbox
    req = notice("breach", Urgency.CRITICAL, ["eng-li"])
    env = ActivityEnvironment()
    results = await asyncio.gather(*(env.run(notify.send_notification, req) for _ in range(3)))
    assert all(isinstance(r, NotifyResult) for r in results)  # nobody waits for anybody
    assert sum(r.sent for r in results) == 1 and all(r.sent + r.already_sent == 1 for r in results)  # the inbox
    assert sum(await asyncio.gather(*(deliver(db, settings) for _ in range(3)))) == 2  # three loops, two sends
    assert len(box.to(LI)) == 1
    assert len(receiver.calls) == 1
    assert len(await inbox(db, req.ticket.id)) == 1


async def test_a_crash_between_send_and_mark_sent(db, settings, mailbox, receiver):
    """The honest exactly-once caveat: the outbox row is not marked sent (the worker died
    after the channel took the message), its lease runs out, and the loop sends it again.
    The inbox still holds one item (its row is unique by dedup key); the repeated email and
    webhook carry the same Message-ID / delivery id, so the receivers can drop them."""
    box, _ = mailbox
    req = notice("breach", Urgency.CRITICAL, ["eng-li"])
    env = ActivityEnvironment()
    await env.run(notify.send_notification, req)
    await deliver(db, settings)
    expired = datetime.now(UTC) - timedelta(seconds=1)
    async with db.engine.begin() as conn:
        await conn.execute(
            update(NotificationOutbox)
            .where(col(NotificationOutbox.base_key) == req.dedup_key)
            .values(status="pending", sent_at=None, claimed_until=expired, next_attempt_at=expired)
        )
    result = await env.run(notify.send_notification, req)  # Temporal's retry of the activity
    assert (result.sent, result.queued) == (1, 2)
    assert await deliver(db, settings) == 2
    assert len(await inbox(db, req.ticket.id)) == 1
    first, second = box.to(LI)
    assert first["Message-ID"] == second["Message-ID"]
    assert len(receiver.calls) == 2 and receiver.calls[0].delivery == receiver.calls[1].delivery


async def test_a_row_held_by_a_live_sender_is_left_alone(db, settings, mailbox, receiver):
    """A row another sender holds (its lease not expired) is not sent by a second loop, nor
    by a repeated activity; it is reported as queued."""
    req = notice("reminder", Urgency.HIGH, ["eng-li"])
    env = ActivityEnvironment()
    await env.run(notify.send_notification, req)
    assert await deliver(db, settings) == 2  # email and IM
    held = datetime.now(UTC) + timedelta(minutes=5)
    async with db.engine.begin() as conn:
        await conn.execute(
            update(NotificationOutbox)
            .where(col(NotificationOutbox.base_key) == req.dedup_key, col(NotificationOutbox.channel) == "im")
            .values(status="pending", sent_at=None, claimed_until=held, next_attempt_at=datetime.now(UTC))
        )
    assert await deliver(db, settings) == 0
    again = await env.run(notify.send_notification, req)
    assert [(d.channel, d.status) for d in again.deliveries if d.channel is Channel.IM] == [(Channel.IM, "queued")]
    assert len(receiver.calls) == 1 and len(mailbox[0].to(LI)) == 1


async def test_a_permanent_rejection_is_given_up_and_not_retried(db, settings, receiver):
    receiver.script = [422]
    req = notice("breach", Urgency.CRITICAL, ["eng-li"])
    env = ActivityEnvironment()
    await env.run(notify.send_notification, req)
    await deliver(db, settings)
    sms = (await outbox(db, req.dedup_key))[("sms", LI_PHONE)]
    assert (sms.status, sms.attempts) == ("failed", 1) and "422" in (sms.last_error or "")
    assert await deliver(db, settings, later=timedelta(hours=1)) == 0  # retrying cannot help
    again = await env.run(notify.send_notification, req)
    assert (again.failed, again.already_sent, again.sent, again.queued) == (1, 2, 0, 0)
    assert [c.status for c in receiver.calls] == [422]


async def test_a_row_is_given_up_after_max_attempts(db, settings, receiver):
    receiver.script = [500, 500, 500]
    req = notice("reminder", Urgency.CRITICAL, ["eng-li"])
    await ActivityEnvironment().run(notify.send_notification, req)
    await deliver(db, settings, notify_max_attempts=2)
    await deliver(db, settings, later=timedelta(minutes=1), notify_max_attempts=2)
    assert await deliver(db, settings, later=timedelta(hours=1), notify_max_attempts=2) == 0
    assert [c.status for c in receiver.calls] == [500, 500]
    row = (await outbox(db, req.dedup_key))[("sms", LI_PHONE)]
    assert (row.status, row.attempts) == ("failed", 2)
    result = await ActivityEnvironment().run(notify.send_notification, req)
    assert result.failed == 1


async def test_roles_resolve_in_the_region_and_unknown_actors_are_reported(db, settings, mailbox, receiver):
    req = notice("reminder", Urgency.LOW, ["role:supervisor", "no-such-actor"])
    result = await ActivityEnvironment().run(notify.send_notification, req)
    sent = {(d.channel, d.recipient) for d in result.deliveries if d.status == "sent"}
    assert (Channel.INBOX, "sup-zhou") in sent
    assert all(d.channel is Channel.INBOX for d in result.deliveries)
    assert ("no-such-actor", "unknown actor") in {
        (d.recipient, d.error) for d in result.deliveries if d.status == "skipped"
    }
    assert mailbox[0].messages == [] and receiver.calls == []
    south = notice("reminder", Urgency.LOW, ["role:engineer"])
    south = south.model_copy(update={"ticket": south.ticket.model_copy(update={"region": "south"})})
    recipients = {d.recipient for d in (await ActivityEnvironment().run(notify.send_notification, south)).deliveries}
    assert "eng-huang" in recipients and "eng-li" not in recipients


async def test_without_a_webhook_sms_is_skipped_and_nothing_waits_for_it(db, settings, mailbox):
    notify.configure(settings.model_copy(update={"webhook_url": None}))
    req = notice("breach", Urgency.CRITICAL, ["eng-li"])
    result = await ActivityEnvironment().run(notify.send_notification, req)
    assert {(d.channel, d.status) for d in result.deliveries} == {
        (Channel.INBOX, "sent"),
        (Channel.EMAIL, "queued"),
        (Channel.SMS, "skipped"),
    }
    assert set(await outbox(db, req.dedup_key)) == {("inbox", "eng-li"), ("email", LI)}


def test_the_input_takes_the_workflow_node_payload_and_refuses_float_amounts():
    payload = {  # what workflows/nodes/notify.py sends
        "dedup_key": "T1:n1:assigned:3",
        "event": "assigned",
        "urgency": "normal",
        "ticket": {"id": "T1", "title": "t", "region": "east", "priority": "normal", "status": "assigned"},
        "recipients": ["eng-li"],
        "text": None,
        "amount": "12.50",
        "currency": "CNY",
    }
    assert NotifyInput.model_validate(payload).amount == Decimal("12.50")
    with pytest.raises(ValueError):
        NotifyInput.model_validate({**payload, "amount": 12.5})
    with pytest.raises(ValueError):
        NotifyInput.model_validate({**payload, "dedup_key": "a|b"})
