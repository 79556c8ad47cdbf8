"""Worker SIGKILL inside side-effecting activities and notification deliveries: effects exactly once.

Every case runs one ticket on a worker started as ``python -m tests.faults.killer <point>``
(tests/faults/killer.py): the production worker with one function wrapped so that the process
SIGKILLs itself at that point, once (after waiting a second there, so that whatever else the
process was doing is done and the kill finds only that one step in flight). A normal
``python -m workers`` is started only after the death, and the ticket finishes on it.

Activities (``test_worker_killed_in_activity``): a ticket of ``FLOW`` (tests/faults/conftest.py:
reserve parts → a task → consume what was used, release the rest → settle → the plug-in
``purchasing.create_request`` through an ``action`` node → end). Temporal times out the attempt
the dead worker held — the plug-in's by itself, within the action node's heartbeat timeout (the
catalog's activities heartbeat); the others at once, the test asking with ``UpdateActivityOptions``
instead of waiting out their 30–60 s start-to-close timeout — and retries it on the normal worker. Every
case checks every effect of the ticket, not only the killed one: the stock ledger (one
reservation of 3, one consumption of 2, one release of 1) and the stock level (on hand 98,
nothing reserved), one statement with its lines, one purchase request (its id in the ticket's
fields), a read model holding exactly the workflow's events — and that the killed activity's
last attempt ran on the normal worker.

- ``reserve-after-commit`` (``store.inventory.reserve:after``): the reservation committed, the
  activity died before answering; the retry finds its ledger rows and reserves nothing twice.
- ``reserve-before-commit`` (``store.inventory._reserve:after``): stock taken and ledger row
  written inside the transaction, which died uncommitted: PostgreSQL rolls it back (and frees
  the ticket's advisory lock); the retry reserves once.
- ``consume-after-commit`` (``store.inventory.consume:after``): consumption and release
  committed; the retry answers from the ledger and moves no stock.
- ``consume-before-commit`` (``store.inventory._consume:after``): level updates and ledger rows
  written, not committed, then the kill: nothing of it stays; the retry books it once.
- ``settle-after-commit`` (``activities.settlement.settle:after``): the statement is stored; the
  retry returns it instead of pricing a second one. (The settlement's transaction cut before its
  commit is test_db_cut.py's.)
- ``plugin-after-commit`` (``store.purchasing.request_once:after``): the purchase request
  committed; the retry of ``purchasing.create_request`` returns the same row (its business key).

Notifications (``test_worker_killed_delivering_a_notification``): a ticket whose ``notify``
node tells eng-li, an e-mail address and a phone number of an escalation at high urgency, so
it has deliveries on every channel: the in-app inbox (written by ``notify.send`` itself), e-mail
(an aiosmtpd sink), SMS and IM (a local HTTP provider checking each request's signature), the
last three sent by the worker's delivery loop. The killer holds its claims with a short lease
(``TICKETFLOW_NOTIFY_LEASE_S``), after which the normal worker takes the row it held. Every case
then checks every delivery of the notification: each outbox row sent; one inbox item per inbox
row; each e-mail, SMS and IM delivery id received once — except the one killed after its send —
and every provider request signed.

The transport boundary, honestly: a worker killed between handing a message to the SMTP server
or the provider and marking its row sent cannot know it was sent; after the lease another
worker sends it again, **with the same Message-ID / delivery id** (``X-Ticketflow-Delivery``,
``Idempotency-Key``), which receivers de-duplicate on. Those cases assert two copies of that
one delivery id at the receiver (exactly one id per delivery), and every other delivery once. A
kill *before* the send must give exactly one message. On a loaded machine a resend may itself
fail and be claimed again: copies of the killed delivery are then at least the expected number
and never more than its claims (each claim sends at most once), all under its one id.

- ``inbox-after-write`` (``InboxChannel.send:after``, inside ``notify.send``): the inbox item is
  written, the activity dies before marking its row; Temporal retries ``notify.send``, which
  writes nothing twice (the item is unique by its key) and marks the row sent. One item.
- ``email-before-send`` (``EmailChannel.send:before``): the row is claimed, nothing sent; after
  the lease the normal worker sends it: exactly one message in the sink.
- ``email-after-send`` (``EmailChannel.send:after``): the sink took the message, the row was
  not marked; re-sent after the lease with the same Message-ID: two copies, one Message-ID.
- ``sms-after-send``, ``im-after-send`` (``WebhookChannel.send:after`` on an SMS / IM message):
  the provider took it; re-sent after the lease with the same delivery id.
"""

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlmodel import col, select

from models.inventory_tables import StockMovement
from models.notifications import Channel
from models.notifications_tables import NotificationInbox, NotificationOutbox
from models.settlement_tables import StatementRow
from models.tables import PurchaseRequest
from models.template import TemplateSpec
from models.ticket import TicketStatus
from tests.faults.conftest import (
    FLOW_EVENTS,
    PART,
    POSTGRES_ONLY,
    FaultRig,
    HookReceiver,
    SmtpSink,
    Stock,
    channel_settings,
    read_model_caught_up,
    within,
)
from workflows.nodes.action import HEARTBEAT_TIMEOUT

pytestmark = POSTGRES_ONLY
# The killer waits this long at its point before dying: whatever else the process is doing (a
# workflow task, another activity, notify.send) finishes meanwhile, so the kill finds only the
# one thing the case is about in flight (else a workflow task the killer held waits out its
# 10 s timeout: slower, not wrong). Within the notification send timeout below.
SETTLE_S = 1.0

# --- activities ---


@dataclass(frozen=True)
class Kill:
    point: str  # module.function:before|after, as the killer takes it
    activity: str  # the activity whose attempt dies


PLUGIN = "purchasing.create_request"
ACTIVITY_KILLS = {
    "reserve-after-commit": Kill("store.inventory.reserve:after", "inventory.reserve"),
    "reserve-before-commit": Kill("store.inventory._reserve:after", "inventory.reserve"),
    "consume-after-commit": Kill("store.inventory.consume:after", "inventory.consume"),
    "consume-before-commit": Kill("store.inventory._consume:after", "inventory.consume"),
    "settle-after-commit": Kill("activities.settlement.settle:after", "settlement.settle"),
    "plugin-after-commit": Kill("store.purchasing.request_once:after", PLUGIN),
}


@pytest.mark.parametrize("case", list(ACTIVITY_KILLS))
async def test_worker_killed_in_activity(case: str, rig: FaultRig, stock: Stock) -> None:
    kill = ACTIVITY_KILLS[case]
    killer = rig.killer(kill.point, settle_s=SETTLE_S)
    h = await rig.open_ticket(f"fault {case}", site=stock.site, part_sku=PART, part_quantity="3")
    drive = None
    if kill.activity != "inventory.reserve":  # the killer opens the task; its completion walks into the kill
        drive = asyncio.ensure_future(rig.work(h, "work", used="2"))
    died = await rig.killed(killer)
    assert f"{died.target}:{died.when}" == kill.point

    # A plug-in activity heartbeats (activities/catalog.py): Temporal notices the dead worker by
    # itself within the action node's heartbeat timeout. The others are DB writes of a second
    # with no heartbeat: the test has Temporal time their attempt out now (an operator's move).
    plugin = kill.activity == PLUGIN
    died_at = time.monotonic()
    dead = await (rig.pending_activity(h, kill.activity) if plugin else rig.retry_dead_attempt(h, kill.activity))
    assert dead.attempt == 1 and dead.last_worker_identity.startswith(f"{killer.pid}@")
    worker = rig.worker()
    wait = HEARTBEAT_TIMEOUT.total_seconds() + 30 if plugin else 30
    state = await within(drive or rig.work(h, "work", used="2"), wait, "the ticket's walk after the retry")
    if plugin:  # the retry came with the heartbeat timeout, not the node's 5-minute start-to-close one
        assert time.monotonic() - died_at < HEARTBEAT_TIMEOUT.total_seconds() + 30
    assert state.status == TicketStatus.RESOLVED and state.active == [], state
    last_attempt, identity = (await rig.attempts(h, kill.activity))[-1]
    assert last_attempt >= 2 and identity.startswith(f"{worker.pid}@"), "the retry did not run on the normal worker"

    tid = state.ticket_id
    async with rig.db.session() as s:
        moves = list(
            await s.exec(select(StockMovement).where(StockMovement.ticket_id == tid).order_by(col(StockMovement.id)))
        )
        statements = list(await s.exec(select(StatementRow).where(StatementRow.ticket_id == tid)))
        requests = list(await s.exec(select(PurchaseRequest).where(PurchaseRequest.ticket_id == tid)))
    assert [(m.kind, m.warehouse, m.sku, m.quantity) for m in moves] == [
        ("reservation", stock.warehouse, PART, 3),
        ("consumption", stock.warehouse, PART, 2),
        ("release", stock.warehouse, PART, 1),
    ]
    assert await stock.level() == (stock.received - 2, 0)

    assert len(statements) == 1
    st = statements[0]
    lines = {(ln["code"], Decimal(ln["quantity"])) for ln in st.statement["lines"]}
    assert {("INSPECT", Decimal(1)), (PART, Decimal(2))} <= lines
    assert Decimal(st.statement["totals"]["total"]) == st.total > 0
    assert state.nodes["settle"].result["statement_id"] == st.id

    assert [(r.sku, r.quantity) for r in requests] == [(PART, 3)]
    assert state.fields["purchase_request_id"] == requests[0].id

    events = await read_model_caught_up(rig.db, h)
    assert [e.action for e in events] == FLOW_EVENTS


# --- notifications ---

EVENT = "escalation"
# eng-li: inbox and IM (their IM user, else their id), e-mail and SMS if they have those
# contacts; the address and the number: e-mail and SMS. Escalations at high urgency go out on
# inbox, e-mail and IM (the urgency) plus e-mail and SMS (the event): every channel.
NOTIFY_FLOW = TemplateSpec.model_validate(
    {
        "key": "fault_notify",
        "name": "Fault suite: one notification on every channel",
        "start": "tell",
        "nodes": [
            {"id": "tell", "type": "notify", "event": EVENT, "urgency": "high",
             "recipients": ["eng-li", "li.wei@fault.test", "+8613800000001"], "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
)  # fmt: skip
# The killer: a claim is its own for a few seconds only (the lease must outlast a send by 5 s).
KILLER_NOTIFY = {"notify_lease_s": "6.6", "notify_send_timeout_s": "1.5", "notify_poll_s": "0.2"}


@dataclass(frozen=True)
class NoticeKill:
    point: str
    channel: Channel  # the delivery killed: on this channel…
    recipient: str  # …to this recipient (eng-li may have an e-mail address and a phone too)
    sent: bool  # the receiver had it before the kill
    in_activity: bool = False  # in notify.send (Temporal retries it), else in the delivery loop


INBOX, EMAIL, WEBHOOK = (
    f"activities.channels.{m}.send" for m in ("inbox.InboxChannel", "email.EmailChannel", "webhook.WebhookChannel")
)
NOTICE_KILLS = {
    "inbox-after-write": NoticeKill(f"{INBOX}:after", Channel.INBOX, "eng-li", True, in_activity=True),
    "email-before-send": NoticeKill(f"{EMAIL}:before", Channel.EMAIL, "li.wei@fault.test", False),
    "email-after-send": NoticeKill(f"{EMAIL}:after", Channel.EMAIL, "li.wei@fault.test", True),
    "sms-after-send": NoticeKill(f"{WEBHOOK}:after", Channel.SMS, "+8613800000001", True),
    "im-after-send": NoticeKill(f"{WEBHOOK}:after", Channel.IM, "", True),  # one IM row: eng-li's
}


async def outbox(rig: FaultRig, ticket_id: str) -> list[NotificationOutbox]:
    async with rig.db.session() as s:
        q = select(NotificationOutbox).where(
            NotificationOutbox.ticket_id == ticket_id, NotificationOutbox.event == EVENT
        )
        return list(await s.exec(q.order_by(col(NotificationOutbox.id))))


async def all_sent(rig: FaultRig, ticket_id: str, timeout: float = 25) -> list[NotificationOutbox]:
    """The ticket's outbox rows once every one is sent."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await outbox(rig, ticket_id)
        if rows and all(r.status == "sent" for r in rows):
            return rows
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not every delivery was sent: {[(r.channel, r.status, r.last_error) for r in rows]}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("case", list(NOTICE_KILLS))
async def test_worker_killed_delivering_a_notification(
    case: str, rig: FaultRig, smtp_sink: SmtpSink, hook_receiver: HookReceiver
) -> None:
    kill = NOTICE_KILLS[case]
    channels = channel_settings(smtp_sink, hook_receiver)
    tid = rig.new_ticket_id()
    # Only this ticket's delivery on that channel: the loop also sends other tests' leftovers.
    match = [repr(kill.channel), tid, *([f"recipient='{kill.recipient}'"] if kill.recipient else [])]
    killer = rig.killer(kill.point, match=match, settle_s=SETTLE_S, **channels, **KILLER_NOTIFY)
    h = await rig.open_ticket(f"fault {case}", template=NOTIFY_FLOW, ticket_id=tid)
    died = await rig.killed(killer)
    killed_id = re.search(r"delivery_id='(\w+)'", rig.marker.read_text())
    assert killed_id is not None, "the marker does not name the delivery"
    if kill.in_activity:
        await rig.retry_dead_attempt(h, "notify.send")
    rig.worker(**channels, notify_poll_s="0.2")

    rows = await all_sent(rig, tid)
    assert {r.channel for r in rows} == {c.value for c in Channel}, "the notification misses a channel"
    (killed,) = [r for r in rows if r.delivery_id == killed_id[1]]
    assert killed.channel == kill.channel.value and f"{died.target}:{died.when}" == kill.point
    assert [(r.channel, r.attempts) for r in rows if r is not killed] == [
        (r.channel, 1) for r in rows if r is not killed
    ]
    # Claims: the dead worker's, then the normal worker's (an inbox row is counted once, when marked).
    # Claims: the dead worker's, then the normal worker's — more only if a send failed meanwhile
    # (a loaded machine): each claim sends at most one copy, so copies never exceed claims.
    assert killed.attempts >= (1 if kill.in_activity else 2)
    await within(rig.until(h, lambda s: s.status == TicketStatus.RESOLVED, "the end"), 20, "the ticket's end")

    def expected(row: NotificationOutbox) -> int:  # copies the receiver gets of one delivery (at least)
        return 2 if row is killed and kill.sent else 1

    def copies_right(row: NotificationOutbox, copies: int) -> bool:
        return copies == expected(row) if row is not killed else expected(row) <= copies <= row.attempts

    async with rig.db.session() as s:
        items = list(
            await s.exec(
                select(NotificationInbox).where(NotificationInbox.ticket_id == tid, NotificationInbox.event == EVENT)
            )
        )
    assert sorted(i.dedup_key for i in items) == sorted(r.dedup_key for r in rows if r.channel == "inbox")

    await within(_copies_arrived(rows, smtp_sink, hook_receiver, tid, expected), 10, "the receivers' copies")
    mail = Counter(m["Message-ID"] for m in smtp_sink.of_ticket(tid) if m["X-Ticketflow-Event"] == EVENT)
    emails = [r for r in rows if r.channel == "email"]
    assert set(mail) == {f"<{r.delivery_id}@fault.test>" for r in emails}, mail  # one Message-ID per delivery
    assert all(copies_right(r, mail[f"<{r.delivery_id}@fault.test>"]) for r in emails), (mail, killed.attempts)
    hooks = [c for c in hook_receiver.of_ticket(tid) if c.body["event"] == EVENT]
    assert all(c.valid for c in hooks)
    calls = Counter((c.body["channel"], c.delivery) for c in hooks)
    hooked = [r for r in rows if r.channel in ("sms", "im")]
    assert set(calls) == {(r.channel, r.delivery_id) for r in hooked}, calls  # one delivery id per delivery
    assert all(copies_right(r, calls[(r.channel, r.delivery_id)]) for r in hooked), (calls, killed.attempts)


async def _copies_arrived(
    rows: list[NotificationOutbox],
    sink: SmtpSink,
    receiver: HookReceiver,
    tid: str,
    expected: Callable[[NotificationOutbox], int],
) -> None:
    """Until the receivers hold as many copies as expected (a send is marked after it is taken)."""
    want = sum(expected(r) for r in rows if r.channel != "inbox")
    while True:
        mail = [m for m in sink.of_ticket(tid) if m["X-Ticketflow-Event"] == EVENT]
        if len(mail) + len([c for c in receiver.of_ticket(tid) if c.body["event"] == EVENT]) >= want:
            return
        await asyncio.sleep(0.05)
