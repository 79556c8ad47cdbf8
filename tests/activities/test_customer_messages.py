"""Customer messages end to end: real tickets through the API and the dev server (the ``stack``),
the projection writing the outbox rows in its transaction, and the delivery loop sending them
to real local receivers — an HTTP SMS gateway, a WeChat-style endpoint and a webhook (uvicorn,
every signature checked) and an SMTP server (aiosmtpd)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import uvicorn
from aiosmtpd.controller import Controller
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activities import customer_messages as delivery
from activities.channels.sms import SmsChannel
from activities.channels.webhook import verify_signature
from api.services import tracking
from api.services.message_templates import load_message_templates
from models.customer_message_tables import CustomerMessage
from models.customer_messages import CustomerChannel, CustomerMessageSettings
from models.customer_tables import Customer, CustomerIdentity
from models.db import Database
from models.settings import Settings
from models.tables import Ticket, TicketEventRow
from models.ticket import TicketEvent, TicketState
from store import customer_messages as store
from store import tickets as ticket_store
from tests.activities.test_notify import Mailbox, free_port

pytestmark = pytest.mark.asyncio

SECRET = "customer-channel-secret-long-enough-for-32+"
SH = ZoneInfo("Asia/Shanghai")
KINDS = ["accepted", "on_the_way", "info_needed", "resolved", "closed"]
QUESTION = "Which floor is the unit on?"

# --- local receivers ---


@dataclass
class Call:
    valid: bool
    status: int
    delivery: str
    json: dict
    at: float  # monotonic time the answer went out


@dataclass
class Endpoint:
    """One receiver: verifies each request, answers scripted statuses (then 200), optionally slowly."""

    script: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    answer: dict = field(default_factory=lambda: {"ok": True})
    calls: list[Call] = field(default_factory=list)

    async def handle(self, request: Request) -> JSONResponse:
        body, h = await request.body(), request.headers
        valid = verify_signature(SECRET, h.get("x-ticketflow-timestamp", ""), body, h.get("x-ticketflow-signature"))
        valid = valid and h.get("idempotency-key") == h.get("x-ticketflow-delivery")
        status = (self.script.pop(0) if self.script else 200) if valid else 401
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.calls.append(
            Call(valid, status, h.get("x-ticketflow-delivery", ""), await request.json(), time.monotonic())
        )
        return JSONResponse(self.answer if status == 200 else {"error": "down"}, status_code=status)

    def ok(self, key: str, value: str) -> list[dict]:
        return [c.json for c in self.calls if c.status == 200 and c.json.get(key) == value]


@dataclass
class Receivers:
    base: str = ""
    sms: Endpoint = field(default_factory=Endpoint)
    wechat: Endpoint = field(default_factory=lambda: Endpoint(answer={"errcode": 0, "errmsg": "ok", "msgid": 1}))
    hook: Endpoint = field(default_factory=Endpoint)


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    rec, port = Receivers(), free_port()

    async def route(request: Request) -> JSONResponse:
        return await getattr(rec, request.path_params["name"]).handle(request)

    app = Starlette(routes=[Route("/{name}", route, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    rec.base = f"http://127.0.0.1:{port}"
    yield rec
    server.should_exit = True
    await task


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@dataclass
class Env:
    db: Database
    settings: Settings
    cm: CustomerMessageSettings
    rec: Receivers
    box: Mailbox

    def deliverer(self, clock=None, channels: dict | None = None) -> delivery.Deliverer:
        built = delivery.build_channels(self.settings, self.cm)
        return delivery.Deliverer(self.db, self.cm, {**built, **(channels or {})}, clock)


def customer_settings(rec: Receivers, **overrides) -> CustomerMessageSettings:
    values = dict(
        customer_sms_url=f"{rec.base}/sms",
        customer_sms_secret=SECRET,
        customer_wechat_url=f"{rec.base}/wechat",
        customer_wechat_secret=SECRET,
        customer_wechat_template_ids={"accepted": "TPL-ACCEPTED", "default": "TPL-PROGRESS"},
        customer_webhook_url=f"{rec.base}/hook",
        customer_webhook_secret=SECRET,
        customer_quiet_hours={},
        customer_message_poll_s=0.05,
        customer_message_backoff_s=0.05,
        customer_message_backoff_max_s=0.2,
        customer_message_max_attempts=6,
    )
    return CustomerMessageSettings(**{**values, **overrides})


def configure(env: Env, **overrides) -> CustomerMessageSettings:
    """The settings (and the tracking links) the in-process worker's projection writes with."""
    env.cm = customer_settings(env.rec, **overrides)

    store.configure(env.cm, tracking_link=delivery.tracking_links(tracking.link_for, "http://ticketflow.test"))
    return env.cm


@pytest.fixture
async def env(stack, db: Database, receivers: Receivers, mailbox) -> AsyncIterator[Env]:
    await load_message_templates(db)
    box, port = mailbox
    settings = Settings(database_url=stack.settings.database_url, smtp_host="127.0.0.1", smtp_port=port,
                        smtp_from="Ticketflow <service@plant.test>")  # fmt: skip
    e = Env(db, settings, customer_settings(receivers), receivers, box)
    configure(e)
    yield e
    store.configure()


# --- customers and tickets ---


async def customer(db: Database, language: str = "zh", consent: dict | None = None, **identities: str) -> dict:
    """A customer in east with the given consent and identities (phone, email, wechat_openid, app_user)."""
    s = uuid.uuid4().hex[:10]
    now = datetime.now(UTC)
    values = {
        "phone": f"+86139{int(s[:7], 16) % 10**8:08d}",
        "email": f"c{s}@example.com",
        "wechat_openid": f"o-{s}",
        "app_user": f"app-{s}",
    }
    cid = f"cus_{s}"
    async with db.session() as session:
        session.add(Customer(id=cid, name=f"Lin Hua {s[:4]}", region="east", referral_code=f"M{s[:9].upper()}",
                             consent=consent or {}, language=language, created_at=now, updated_at=now))  # fmt: skip
        await session.flush()
        for kind in identities:
            session.add(CustomerIdentity(customer_id=cid, kind=kind, value=values[kind], created_at=now))
        await session.commit()
    return {"id": cid, "name": f"Lin Hua {s[:4]}", **{k: values[k] for k in identities}}


async def new_ticket(stack, c: dict, **body) -> str:
    r = await stack.create(customer={"id": c["id"]}, title="Compressor #3 overheating", **body)
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"])
    return tid


async def act(stack, tid: str, action: str, actor: str = "eng-li", **body) -> dict:
    r = await stack.act(tid, action, actor, **body)
    assert r.status_code == 200, (action, r.text)
    return r.json()


async def whole_life(stack, tid: str) -> None:
    """Accepted, on the way, a question and its answer, resolved, closed."""
    await act(stack, tid, "claim")
    await act(stack, tid, "start")
    await act(stack, tid, "request_info", question=QUESTION)
    r = await stack.http.post(f"/tickets/{tid}/events", json={"name": "customer_reply", "text": "The 4th"},
                              headers=stack.as_actor("agent-wang"))  # fmt: skip
    assert r.status_code == 202, r.text
    await stack.until(tid, lambda t: "resolve" in t["allowed_actions"])
    await act(stack, tid, "resolve", resolution="fan replaced")
    await stack.until(tid, lambda t: "close" in t["allowed_actions"])
    await act(stack, tid, "close", "agent-wang")


async def rows(db: Database, tid: str) -> list[CustomerMessage]:
    async with db.session() as s:
        return await store.of_ticket(s, tid)


async def until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# --- the tests ---


async def test_a_ticket_s_life_tells_the_customer_once_per_kind_and_channel_in_order(stack, env):
    configure(env, customer_message_fanout="all")
    c = await customer(
        env.db, "en", {"sms": True, "email": True, "wechat": False}, phone="", email="", wechat_openid=""
    )
    tid = await new_ticket(stack, c)
    await whole_life(stack, tid)

    written = await rows(env.db, tid)
    assert [(m.kind, m.channel, m.status) for m in written] == [
        (k, ch, "pending") for k in KINDS for ch in ("sms", "email")
    ]  # wechat: an openid, but no consent
    assert {m.language for m in written} == {"en"}
    assert await env.deliverer().deliver_due() == 10
    assert await env.deliverer().deliver_due() == 0  # nothing twice

    sms = env.rec.sms.ok("to", c["phone"])
    assert [m["kind"] for m in sms] == KINDS  # in order
    assert [m["language"] for m in sms] == ["en"] * 5
    accepted, on_the_way, info, resolved, closed = (m["text"] for m in sms)
    assert accepted.startswith(f'Hello {c["name"]}, your service request "Compressor #3 overheating" has been accepted')
    assert "Li Wei" in accepted and "Li Wei" in on_the_way and "is on the way" in on_the_way
    assert QUESTION in info and "resolved" in resolved and "closed" in closed
    assert all(not c.valid or c.status == 200 for c in env.rec.sms.calls)

    mails = env.box.to(c["email"])
    assert [m["X-Ticketflow-Event"] for m in mails] == KINDS
    assert mails[0]["Subject"] == f"[{tid}] Your service request has been accepted"
    assert len({m["Message-ID"] for m in mails}) == 5

    after = await rows(env.db, tid)
    assert {(m.status, m.attempts) for m in after} == {("sent", 1)}
    assert all(m.sent_at is not None and m.reason is None for m in after)
    # the tracking link in the message opens the customer's page
    link = next(w for w in accepted.split() if "/t/" in w)
    page = await stack.http.get(link.removeprefix("http://ticketflow.test"))
    assert page.status_code == 200 and "Compressor #3 overheating" in page.text


async def test_no_consent_writes_skipped_rows_and_sends_nothing(stack, env):
    c = await customer(env.db, "zh", {"sms": False}, phone="", email="", app_user="")
    tid = await new_ticket(stack, c)
    await act(stack, tid, "claim")
    await act(stack, tid, "start")
    await act(stack, tid, "resolve", resolution="done")

    written = await rows(env.db, tid)
    assert [(m.kind, m.channel, m.status) for m in written] == [
        ("accepted", "none", "skipped"),
        ("on_the_way", "none", "skipped"),
        ("resolved", "none", "skipped"),
    ]
    why = "wechat: no consent; sms: no consent; email: no consent; webhook: no consent"
    assert written[0].reason == f"no channel to reach the customer on ({why})"
    assert all(m.subject == m.body == "" for m in written)  # nothing rendered for nobody
    await env.deliverer().deliver_due()
    assert (
        not env.rec.sms.ok("to", c["phone"]) and not env.box.to(c["email"]) and not env.rec.hook.ok("to", c["app_user"])
    )


def next_local(hour: int, minute: int) -> datetime:
    """The next ``hour:minute`` in Shanghai (east's timezone), at least a minute from now."""
    now = datetime.now(SH) + timedelta(minutes=1)
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (at if at > now else at + timedelta(days=1)).astimezone(UTC)


async def test_quiet_hours_hold_a_message_and_on_the_way_takes_the_held_ones_along(stack, env):
    configure(env, customer_quiet_hours={"*": "21:00-08:00"})
    c = await customer(env.db, "zh", {"sms": True}, phone="")
    tid = await new_ticket(stack, c)
    await act(stack, tid, "claim")

    night = next_local(22, 30)
    clock = {"now": night}
    d = env.deliverer(clock=lambda: clock["now"])
    assert await d.deliver_due() == 1  # held, not sent
    (accepted,) = await rows(env.db, tid)
    morning = (night.astimezone(SH) + timedelta(days=1)).replace(hour=8, minute=0).astimezone(UTC)
    assert (accepted.status, accepted.held_until, accepted.next_attempt_at) == ("pending", morning, morning)
    assert accepted.reason == f"held for quiet hours until {morning.isoformat()}"
    assert not env.rec.sms.ok("to", c["phone"])

    await act(stack, tid, "start")  # the engineer sets out at night: time-critical
    clock["now"] = night + timedelta(minutes=1)
    assert await d.deliver_due() == 2
    sms = env.rec.sms.ok("to", c["phone"])
    assert [m["kind"] for m in sms] == ["accepted", "on_the_way"]  # the held one first, in order
    assert "已受理" in sms[0]["text"] and "已出发" in sms[1]["text"]  # Chinese, the customer's language

    await act(stack, tid, "resolve", resolution="done")
    clock["now"] = night + timedelta(minutes=5)
    await d.deliver_due()
    assert [m.status for m in await rows(env.db, tid)] == ["sent", "sent", "pending"]  # resolved: held
    clock["now"] = morning + timedelta(seconds=1)
    assert await d.deliver_due() == 1
    assert [m["kind"] for m in env.rec.sms.ok("to", c["phone"])] == ["accepted", "on_the_way", "resolved"]


async def test_an_sms_gateway_down_for_a_while_is_retried_and_sends_once(stack, env):
    c = await customer(env.db, "zh", {"sms": True}, phone="")
    tid = await new_ticket(stack, c)
    await act(stack, tid, "claim")

    down = SmsChannel(f"http://127.0.0.1:{free_port()}/sms", SECRET, timeout_s=2)  # nothing listens there
    assert await env.deliverer(channels={CustomerChannel.SMS: down}).pass_once(CustomerChannel.SMS) == 1
    (row,) = await rows(env.db, tid)
    assert (row.status, row.attempts) == ("pending", 1) and "ConnectError" in (row.reason or "")

    env.rec.sms.script = [503, 500]  # back, but overloaded twice
    stop = asyncio.Event()
    loop = asyncio.create_task(env.deliverer().run(stop))
    try:

        async def sent() -> bool:
            return (await rows(env.db, tid))[0].status == "sent"

        await until(sent)
    finally:
        stop.set()
        await loop
    calls = [x for x in env.rec.sms.calls if x.json.get("to") == c["phone"]]
    assert [x.status for x in calls] == [503, 500, 200]
    assert {x.delivery for x in calls} == {row.delivery_id}  # one idempotency key on every attempt
    (row,) = await rows(env.db, tid)
    assert (row.status, row.attempts, row.reason) == ("sent", 4, None)
    assert await env.deliverer().deliver_due() == 0 and len(env.rec.sms.ok("to", c["phone"])) == 1

    env.rec.sms.script = [422]  # the gateway refuses the message itself: given up, not retried
    await act(stack, tid, "start")
    await env.deliverer().deliver_due()
    failed = (await rows(env.db, tid))[1]
    assert (failed.kind, failed.status, failed.attempts) == ("on_the_way", "failed", 1)
    assert "HTTP 422" in (failed.reason or "")


async def test_a_slow_channel_does_not_hold_up_the_others_and_each_speaks_its_format(stack, env):
    slow = await customer(env.db, "en", {"wechat": True}, wechat_openid="")
    quick = await customer(env.db, "zh", {"sms": True}, phone="")
    app = await customer(env.db, "en", {"app": True, "sms": True}, app_user="", phone="")
    tickets = [
        await new_ticket(stack, slow),
        await new_ticket(stack, quick),
        await new_ticket(stack, app, channel="app"),
    ]
    for tid in tickets:
        await act(stack, tid, "claim")
    env.rec.wechat.delay_s = 2.0

    stop = asyncio.Event()
    started = time.monotonic()
    loop = asyncio.create_task(env.deliverer().run(stop))
    try:

        async def all_sent() -> bool:
            told = [m for tid in tickets for m in await rows(env.db, tid)]
            return len(told) == 3 and all(m.status == "sent" for m in told)

        await until(all_sent)
    finally:
        stop.set()
        await loop
    (sms,) = [x for x in env.rec.sms.calls if x.json.get("to") == quick["phone"]]
    (wechat,) = [x for x in env.rec.wechat.calls if x.json.get("touser") == slow["wechat_openid"]]
    assert sms.at - started < 1.5 <= wechat.at - started  # the SMS did not wait for WeChat

    w = wechat.json
    assert (w["template_id"], w["client_msg_id"]) == ("TPL-ACCEPTED", wechat.delivery)
    assert w["data"]["first"]["value"] == f"[{tickets[0]}] Your service request has been accepted"
    assert w["data"]["keyword1"]["value"].startswith(tickets[0]) and "Li Wei" in w["data"]["keyword3"]["value"]
    assert w["url"].startswith("http://ticketflow.test/t/") and w["url"] in w["data"]["remark"]["value"]

    (hook,) = env.rec.hook.ok("to", app["app_user"])  # the ticket came from the app: the app hears
    assert (hook["channel"], hook["kind"], hook["ticket_id"], hook["customer_id"]) == (
        "webhook", "accepted", tickets[2], app["id"]
    )  # fmt: skip
    assert hook["tracking_url"].startswith("http://ticketflow.test/t/") and "Li Wei" in hook["engineer"]
    assert not env.rec.sms.ok("to", app["phone"])  # one channel per message: the preferred one
    assert all(x.valid for e in (env.rec.sms, env.rec.wechat, env.rec.hook) for x in e.calls)


async def state_and_events(db: Database, tid: str) -> tuple[TicketState, list[TicketEvent]]:
    """What the projection wrote, to write it again."""
    async with db.session() as s:
        ticket = await s.get(Ticket, tid)
        assert ticket is not None
        stored = list(await s.exec(select(TicketEventRow).where(TicketEventRow.ticket_id == tid)))
    events = [
        TicketEvent(
            ticket_id=tid,
            seq=e.seq,
            action=e.action,
            actor_id=e.actor_id,
            from_status=e.from_status,
            to_status=e.to_status,
            at=e.at,
            data=e.data,
        )  # fmt: skip
        for e in sorted(stored, key=lambda e: e.seq)
    ]
    return TicketState.model_validate(ticket.snapshot), events


async def test_a_repeated_projection_write_tells_nothing_twice(stack, env):
    c = await customer(env.db, "en", {"sms": True}, phone="", email="")
    tid = await new_ticket(stack, c)
    await whole_life(stack, tid)
    before = [(m.id, m.kind, m.channel) for m in await rows(env.db, tid)]
    assert [k for _, k, _ in before] == KINDS

    state, events = await state_and_events(env.db, tid)
    await asyncio.gather(*(ticket_store.record_changes(env.db, state, events) for _ in range(3)))  # at once
    # The customer now consents to email too: the events already told stay told, on their channel.
    async with env.db.session() as s:
        await s.exec(sa.update(Customer).where(Customer.id == c["id"]).values(consent={"sms": True, "email": True}))  # type: ignore[call-overload]
        await s.commit()
    configure(env, customer_message_fanout="all")
    await ticket_store.record_changes(env.db, state, events)
    assert [(m.id, m.kind, m.channel) for m in await rows(env.db, tid)] == before

    assert await env.deliverer().deliver_due() == 5
    assert [m["kind"] for m in env.rec.sms.ok("to", c["phone"])] == KINDS
    assert not env.box.to(c["email"])


async def test_a_failing_tracking_link_leaves_the_message_without_one_and_the_ticket_going(stack, env):
    async def broken(session, ticket_id: str) -> str:
        raise RuntimeError("link service down")

    store.configure(env.cm, tracking_link=broken)
    c = await customer(env.db, "en", {"sms": True}, phone="")
    tid = await new_ticket(stack, c)
    await act(stack, tid, "claim")  # the projection, and so the action, went through
    (row,) = await rows(env.db, tid)
    assert (row.kind, row.status, row.data["tracking_url"]) == ("accepted", "pending", "")
    assert "/t/" not in row.body and row.body.endswith("will take care of it.")
