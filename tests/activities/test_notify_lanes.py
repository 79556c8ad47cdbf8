"""Independent notification channels (issue #13): ``notify.send`` writes the outbox, delivers
the in-app inbox itself and returns; the delivery loop (``activities.notify.run``) sends e-mail,
SMS and IM, one lane per channel.

First through the real ticket workflow on the dev server (a worker like the service's, with the
loop beside it): a dead SMTP server — one that refuses connections, one that accepts and never
answers — delays neither the approver's inbox, nor SMS and IM, nor the ticket's later
notifications, and once it is back every e-mail arrives exactly once. Then the lanes themselves,
with adapters that hang, fail and count."""

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import delete
from sqlmodel import col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import notify
from activities.channels import DeliveryError, OutboundMessage
from activities.channels.email import message_id
from activities.channels.inbox import InboxChannel
from models.db import Database
from models.notifications import Channel, NotifySettings, Urgency
from models.notifications_tables import NotificationContact, NotificationInbox, NotificationOutbox
from models.settings import Settings
from models.template import SLA, SlaPolicy, TemplateSpec, TemplateVersion
from models.ticket import ActorRef, ApproveInput, Priority, TicketInput, TicketState
from tests.activities.test_notify import (
    SECRET,
    Mailbox,
    Receiver,
    free_port,
    give_up_pending,
    notice,
    receiver,
    set_contact,
)
from tests.conftest import settings_for, task_queue
from tests.support import preset
from workers.main import build_worker
from workflows.ticket import TicketWorkflow

pytestmark = pytest.mark.asyncio
_ = receiver  # the webhook provider (SMS and IM), a fixture of test_notify

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
SUN = ActorRef(id="mgr-sun", roles=["manager"], regions=["east"])
QIAN = ActorRef(id="fin-qian", roles=["finance"], regions=["*"])
SMTP_FROM = "Ticketflow 工单 <ticketflow@plant.test>"


# --- helpers ---


async def within(seconds: float, since: float, check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll ``check`` until it holds, at most ``seconds`` after ``since`` (monotonic); when it did."""
    while not await check():
        assert time.monotonic() - since < seconds, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - since


async def outbox_of(db: Database, ticket_id: str, channel: str | None = None) -> list[NotificationOutbox]:
    async with db.session() as s:
        q = select(NotificationOutbox).where(col(NotificationOutbox.ticket_id) == ticket_id)
        if channel:
            q = q.where(col(NotificationOutbox.channel) == channel)
        return list(await s.exec(q.order_by(col(NotificationOutbox.id))))


async def in_inbox(db: Database, ticket_id: str, actor_id: str, event: str) -> bool:
    async with db.session() as s:
        q = select(NotificationInbox).where(
            col(NotificationInbox.ticket_id) == ticket_id,
            col(NotificationInbox.actor_id) == actor_id,
            col(NotificationInbox.event) == event,
        )
        return (await s.exec(q)).first() is not None


async def keep_contacts(db: Database, actor_ids: list[str]) -> Callable[[], Awaitable[None]]:
    """Snapshot these people's contacts; the returned function puts them back."""
    async with db.session() as s:
        q = select(NotificationContact).where(col(NotificationContact.actor_id).in_(actor_ids))
        before = {c.actor_id: c.model_dump() for c in await s.exec(q)}

    async def restore() -> None:
        async with db.engine.begin() as conn:
            await conn.execute(delete(NotificationContact).where(col(NotificationContact.actor_id).in_(actor_ids)))
        for actor_id, row in before.items():
            await set_contact(db, actor_id, **{k: v for k, v in row.items() if k not in ("actor_id", "updated_at")})

    return restore


# --- a dead SMTP server, through the ticket workflow ---


class DeadSmtp:
    """An SMTP address that is dead — nothing listens ("refuses"), or a socket accepts and never
    says a word ("hangs") — until ``come_back`` starts a real server (aiosmtpd) on it."""

    def __init__(self, how: str) -> None:
        self.how, self.port, self.box = how, free_port(), Mailbox()
        self._silent: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []
        self._controller: Controller | None = None

    async def start(self) -> None:
        if self.how == "hangs":

            async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                self._held.append(writer)
                await reader.read()  # never a greeting: the client waits until it gives up

            self._silent = await asyncio.start_server(hold, "127.0.0.1", self.port)

    async def come_back(self) -> None:
        if self._silent is not None:
            self._silent.close()
            for writer in self._held:
                writer.close()
            await self._silent.wait_closed()
            self._silent = None
        self._controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(self._controller.start)

    async def close(self) -> None:
        if self._silent is not None:
            self._silent.close()
            for writer in self._held:
                writer.close()
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)

    def mails_of(self, ticket_id: str) -> list[Any]:
        with self.box._lock:
            return [m for _, m in self.box.messages if m["X-Ticketflow-Ticket"] == ticket_id]


# The loop of the world below: a poll far longer than the test, so every prompt delivery is the
# wake-up by notify.send (or a backoff ending); a hung SMTP send is given up after 1 s.
WORLD_LANES = NotifySettings(
    notify_poll_s=60.0,
    notify_concurrency=4,
    notify_send_timeout_s=1.0,
    notify_lease_s=10.0,
    notify_backoff_s=0.2,
    notify_backoff_max_s=0.5,
    notify_max_attempts=100,
)


@dataclass
class World:
    db: Database
    client: Client
    queue: str
    settings: Settings
    smtp: DeadSmtp
    provider: Receiver
    tag: str


@pytest.fixture(params=["refuses", "hangs"])
async def world(
    request: pytest.FixtureRequest, db: Database, database_url: str, devserver: WorkflowEnvironment, receiver: Receiver
) -> AsyncIterator[World]:
    """A worker as the service runs it (workflows, activities, the notification loop) whose
    SMTP server is dead; SMS and IM go to a live webhook provider."""
    await give_up_pending(db)  # earlier tests' rows: this test's loop sends its own only
    smtp = DeadSmtp(request.param)
    await smtp.start()
    queue, tag = task_queue(), uuid.uuid4().hex[:6]
    base = settings_for(database_url, devserver, queue).model_dump(exclude_unset=True)
    settings = Settings(
        **base,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from=SMTP_FROM,
        webhook_url=receiver.url,
        webhook_secret=SecretStr(SECRET),
        webhook_timeout_s=2,
        finance_cc=[f"finance-{tag}@plant.test"],
        legal_cc=[f"legal-{tag}@plant.test"],
    )
    people = {
        "mgr-sun": {"email": f"sun.li-{tag}@plant.test", "phone": "+8613900000101", "im_user": f"wecom-sun-{tag}"},
        "fin-qian": {"email": f"qian.yu-{tag}@plant.test", "phone": "+8613900000102", "im_user": None},
        "sup-zhou": {"email": f"zhou.q-{tag}@plant.test", "phone": "+8613900000103", "im_user": f"wecom-zhou-{tag}"},
    }
    restore = await keep_contacts(db, list(people))
    for actor_id, contact in people.items():
        await set_contact(db, actor_id, **contact)
    notify.configure(settings)
    stop = asyncio.Event()
    loop = asyncio.create_task(notify.run(db, settings, stop, WORLD_LANES))
    w = World(db, devserver.client, queue, settings, smtp, receiver, tag)
    try:
        async with build_worker(devserver.client, settings):
            yield w
    finally:
        stop.set()
        await loop
        notify.configure()
        await restore()
        await smtp.close()
        await give_up_pending(db)


def discount_with_a_quick_sla() -> TemplateVersion:
    """The discount preset (manager → finance → general manager above 100,000) with a 3-second
    resolution target and no reminders: its breach (told by SMS and IM too) comes at 3 s."""
    base = preset("discount_approval")
    spec = base.spec.model_copy(
        update={
            "sla": {Priority.NORMAL: SLA(resolution=timedelta(seconds=3))},
            "sla_policy": SlaPolicy(reminders=[], escalations=[]),
        }
    )
    return TemplateVersion(key=base.key, version=base.version + 1, spec=TemplateSpec.model_validate(spec.model_dump()))


async def state_until(h: WorkflowHandle[Any, Any], check: Callable[[TicketState], bool], timeout: float) -> TicketState:
    deadline = time.monotonic() + timeout
    while True:
        s = await h.query(TicketWorkflow.get_state)
        if check(s):
            return s
        assert time.monotonic() < deadline, f"state not reached (status {s.status}, active {s.active})"
        await asyncio.sleep(0.05)


async def test_a_dead_smtp_server_delays_no_other_notification_and_each_mail_arrives_once(world: World):
    w, db = world, world.db
    tid = f"TNL{uuid.uuid4().hex[:9].upper()}"
    inp = TicketInput(
        ticket_id=tid, ticket_type="discount_approval", region="east", priority=Priority.NORMAL,
        title="Framework discount", created_by=AGENT, created_at=datetime.now(UTC),
        template=discount_with_a_quick_sla(),
        fields={"customer": "ACME Trading", "amount": {"amount": "150000.00", "currency": "CNY"},
                "justification": "three-year framework order"},
    )  # fmt: skip
    started = time.monotonic()
    h = await w.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{tid}", task_queue=w.queue)
    try:
        # 1. The approver's inbox item is there at once, though every e-mail of it is stuck
        #    (the approver's own, the finance and legal copies of a 150,000 discount).
        await within(2.0, started, lambda: in_inbox(db, tid, "mgr-sun", "approval_needed"), "mgr-sun's inbox")

        # 2. The ticket's next notification does not queue behind the first one's e-mails.
        await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=SUN, reason="good customer"))
        approved = time.monotonic()
        await within(2.0, approved, lambda: in_inbox(db, tid, "fin-qian", "approval_needed"), "fin-qian's inbox")

        # 3. The SLA breach, a milestone the workflow awaits: told at once in the inbox, by IM and
        #    by SMS — the same notification as a stuck e-mail to the same supervisor.
        await state_until(h, lambda s: s.sla.breached, 15)
        breached = time.monotonic()

        async def breach_by_im_and_sms() -> bool:
            told = {
                c.json["channel"]
                for c in w.provider.ok()
                if c.json["ticket_id"] == tid and c.json["event"] == "breach" and c.json["actor_id"] == "sup-zhou"
            }
            return told == {"im", "sms"} and await in_inbox(db, tid, "sup-zhou", "breach")

        await within(2.0, breached, breach_by_im_and_sms, "the breach by IM and SMS")

        # 4. And after the breach, the next level's notification is still prompt.
        await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=QIAN))
        approved = time.monotonic()
        await within(2.0, approved, lambda: in_inbox(db, tid, "gm-zheng", "approval_needed"), "gm-zheng's inbox")

        mails = await outbox_of(db, tid, "email")
        assert len(mails) >= 7 and all(m.status == "pending" for m in mails)  # all still waiting for SMTP
        assert w.smtp.mails_of(tid) == []
        assert any(m.last_error for m in mails)  # tried, and failed (refused, or no answer within 1 s)

        # 5. SMTP comes back: every e-mail arrives, each exactly once, by its Message-ID.
        await w.smtp.come_back()
        back = time.monotonic()

        async def all_mail_sent() -> bool:
            return all(m.status == "sent" for m in await outbox_of(db, tid, "email"))

        await within(15.0, back, all_mail_sent, "every e-mail sent")
        mails = await outbox_of(db, tid, "email")
        expected = {message_id(m.delivery_id, SMTP_FROM): m.recipient for m in mails}
        got = Counter(m["Message-ID"] for m in w.smtp.mails_of(tid))
        assert got == Counter(expected.keys())  # each once, none missing, none extra
        assert {m.recipient for m in mails} >= {
            f"sun.li-{w.tag}@plant.test", f"qian.yu-{w.tag}@plant.test", f"zhou.q-{w.tag}@plant.test",
            f"finance-{w.tag}@plant.test", f"legal-{w.tag}@plant.test",
        }  # fmt: skip

        # SMS and IM: each delivery once, signed; the inbox: one item per person and notification.
        ours = [c for c in w.provider.calls if c.json["ticket_id"] == tid]
        assert ours and all(c.valid and c.status == 200 for c in ours)
        assert max(Counter(c.delivery for c in ours).values()) == 1
        assert all(r.status == "sent" for r in await outbox_of(db, tid) if r.channel != "email")
    finally:
        await h.terminate(reason="test over")


# --- the lanes ---


@dataclass
class Script:
    """A channel adapter that counts what it sends; a recipient in ``hang`` never gets an answer,
    one in ``fail`` gets those errors first."""

    hang: set[str] = field(default_factory=set)
    fail: dict[str, list[Exception]] = field(default_factory=dict)
    delay_s: float = 0.0
    calls: list[tuple[str, float]] = field(default_factory=list)  # (recipient, monotonic time)
    sent: Counter[str] = field(default_factory=Counter)  # delivery id → times taken

    async def send(self, m: OutboundMessage) -> None:
        self.calls.append((m.recipient, time.monotonic()))
        if m.recipient in self.hang:
            await asyncio.Event().wait()
        if self.fail.get(m.recipient):
            raise self.fail[m.recipient].pop(0)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.sent[m.delivery_id] += 1

    def times(self, recipient: str) -> list[float]:
        return [t for r, t in self.calls if r == recipient]

    async def called(self, recipient: str) -> bool:
        return bool(self.times(recipient))


def lanes(**overrides: Any) -> NotifySettings:
    values: dict[str, Any] = dict(
        notify_poll_s=60.0,  # longer than any test: what goes out promptly was woken
        notify_concurrency=2,
        notify_send_timeout_s=1.0,
        notify_lease_s=10.0,
        notify_backoff_s=5.0,
        notify_backoff_max_s=5.0,
    )
    return NotifySettings(**{**values, **overrides})


@pytest.fixture
async def routed(db: Database, database_url: str) -> AsyncIterator[None]:
    """notify.send routes with these settings; the lanes send this test's rows only."""
    await give_up_pending(db)
    notify.configure(Settings(database_url=database_url, webhook_url=None))
    yield
    notify.configure()
    await give_up_pending(db)


async def mail(*to: str) -> str:
    """notify.send of a reminder to these e-mail addresses (outbox rows on the email lane only)."""
    req = notice("reminder", Urgency.LOW, list(to))
    result = await ActivityEnvironment().run(notify.send_notification, req)
    assert result.queued == len(to) and result.sent == 0
    return req.ticket.id


@asynccontextmanager
async def running(*deliverers: notify.Deliverer) -> AsyncIterator[None]:
    """These loops run (as workers would) for the block."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(stop)) for d in deliverers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def row_of(db: Database, ticket_id: str) -> NotificationOutbox:
    [row] = await outbox_of(db, ticket_id)
    return row


async def test_a_hung_send_holds_its_slot_for_the_send_timeout_and_nothing_else(db, routed):
    script = Script(hang={"hung-1@plant.test", "hung-2@plant.test"})
    async with running(notify.Deliverer(db, lanes(notify_concurrency=2), {Channel.EMAIL: script})):
        hung = await mail("hung-1@plant.test")
        await within(1.0, time.monotonic(), lambda: script.called("hung-1@plant.test"), "the hung send")
        queued = time.monotonic()
        ok = await mail("ok-1@plant.test")
        # The lane's other slot takes it at once (woken by notify.send: the poll is a minute).
        await within(0.5, queued, lambda: _sent(db, ok), "a row beside the hung one")

        row = await row_of(db, hung)
        assert (row.status, row.attempts) == ("pending", 1)  # still hanging
        await within(2.0, queued, lambda: _pending_with_error(db, hung), "the hung send given up")
        row = await row_of(db, hung)
        assert "no answer within 1 s" in (row.last_error or "") and row.next_attempt_at > datetime.now(UTC)

    # One slot only: a hung send holds the lane for the send timeout, then the next row goes.
    async with running(notify.Deliverer(db, lanes(notify_concurrency=1), {Channel.EMAIL: script})):
        await mail("hung-2@plant.test")
        await within(1.0, time.monotonic(), lambda: script.called("hung-2@plant.test"), "the hung send")
        queued = time.monotonic()
        ok = await mail("ok-2@plant.test")
        took = await within(1.8, queued, lambda: _sent(db, ok), "the row behind the hung one")
        assert took >= 0.5  # it did wait for the hung send's timeout (1 s from when that started)


async def test_two_loops_on_one_outbox_never_send_a_row_twice(db, routed):
    script = Script(delay_s=0.01)
    first, second = Script(), Script()

    class Both:  # each loop's own count, one shared count of what the channel took
        def __init__(self, mine: Script) -> None:
            self.mine = mine

        async def send(self, m: OutboundMessage) -> None:
            await script.send(m)
            self.mine.sent[m.delivery_id] += 1

    one = notify.Deliverer(db, lanes(notify_concurrency=4), {Channel.EMAIL: Both(first)})
    two = notify.Deliverer(db, lanes(notify_concurrency=4), {Channel.EMAIL: Both(second)})
    async with running(one, two):
        tickets = [await mail(f"a{i}@plant.test", f"b{i}@plant.test") for i in range(20)]

        async def all_sent() -> bool:
            return all([r.status == "sent" for t in tickets for r in await outbox_of(db, t)])

        await within(10.0, time.monotonic(), all_sent, "every row sent")
    ours = {r.delivery_id for t in tickets for r in await outbox_of(db, t)}
    assert len(ours) == 40
    assert {d: script.sent[d] for d in ours} == dict.fromkeys(ours, 1)  # each row once, across both loops
    assert sum(first.sent[d] for d in ours) and sum(second.sent[d] for d in ours)  # both loops did send


async def test_a_permanent_refusal_fails_after_one_try(db, routed):
    script = Script(fail={"gone@plant.test": [DeliveryError("550 no such user", permanent=True)]})
    async with running(notify.Deliverer(db, lanes(), {Channel.EMAIL: script})):
        tid = await mail("gone@plant.test")
        await within(2.0, time.monotonic(), lambda: _status(db, tid, "failed"), "the row failed")
    row = await row_of(db, tid)
    assert (row.attempts, row.last_error) == (1, "550 no such user")
    assert len(script.times("gone@plant.test")) == 1 and not script.sent


async def test_transient_errors_back_off_then_the_row_is_sent_once(db, routed):
    busy = [DeliveryError("421 try again later"), ConnectionResetError("reset by peer")]
    script = Script(fail={"busy@plant.test": busy})
    settings = lanes(notify_backoff_s=0.3, notify_backoff_max_s=5.0)
    async with running(notify.Deliverer(db, settings, {Channel.EMAIL: script})):
        tid = await mail("busy@plant.test")
        await within(5.0, time.monotonic(), lambda: _sent(db, tid), "sent at last")
    first, second, third = script.times("busy@plant.test")
    # Backoff with jitter: half to all of 0.3 s, then of 0.6 s; the end of a backoff wakes the
    # lane (the poll is a minute), so the retry is not much later either.
    assert 0.15 <= second - first < 0.3 + 0.5
    assert 0.3 <= third - second < 0.6 + 0.5
    row = await row_of(db, tid)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert list(script.sent.values()) == [1]


async def test_an_inbox_item_the_activity_could_not_write_fails_the_activity_and_the_loop_backs_it_up(
    db, database_url, routed
):
    """The activity's own failure (its database away while writing the inbox) fails it — Temporal
    retries it — and should it never be retried, the loop's inbox lane writes the item later."""

    class DatabaseAway:
        async def send(self, m: OutboundMessage) -> None:
            raise ConnectionRefusedError("database away")

    settings = Settings(database_url=database_url, webhook_url=None)
    notify.configure(settings, channels={Channel.INBOX: DatabaseAway()})
    req = notice("reminder", Urgency.LOW, ["eng-li"])
    with pytest.raises(ConnectionRefusedError):
        await ActivityEnvironment().run(notify.send_notification, req)
    row = await row_of(db, req.ticket.id)
    assert (row.channel, row.status) == ("inbox", "pending") and not await in_inbox(
        db, req.ticket.id, "eng-li", "reminder"
    )

    inbox_only = {Channel.INBOX: InboxChannel(db)}
    await notify.Deliverer(db, lanes(), inbox_only).deliver_due()
    assert (await row_of(db, req.ticket.id)).status == "pending"  # the activity's retry comes first
    later = notify.Deliverer(db, lanes(), inbox_only, clock=lambda: datetime.now(UTC) + notify.INBOX_FALLBACK * 2)
    await later.deliver_due()
    assert (await row_of(db, req.ticket.id)).status == "sent" and await in_inbox(
        db, req.ticket.id, "eng-li", "reminder"
    )

    notify.configure(settings)
    retried = await ActivityEnvironment().run(notify.send_notification, req)  # Temporal's retry, at last
    assert [(d.channel, d.status) for d in retried.deliveries] == [(Channel.INBOX, "already_sent")]
    async with db.session() as s:
        q = select(NotificationInbox).where(col(NotificationInbox.ticket_id) == req.ticket.id)
        assert len(list(await s.exec(q))) == 1


async def _status(db: Database, ticket_id: str, status: str) -> bool:
    return (await row_of(db, ticket_id)).status == status


async def _sent(db: Database, ticket_id: str) -> bool:
    return await _status(db, ticket_id, "sent")


async def _pending_with_error(db: Database, ticket_id: str) -> bool:
    row = await row_of(db, ticket_id)
    return row.status == "pending" and row.last_error is not None
