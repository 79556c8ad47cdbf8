"""Outbound webhooks end to end: real tickets through the API and the dev server (the ``stack``),
the projection writing the delivery rows in its transaction, and the delivery loop sending them
to a real local HTTP receiver (uvicorn) that checks every signature."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import uvicorn
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activities import webhooks
from domain.inbound_auth import BadSignature, verify
from models.common import Priority, TicketStatus
from models.db import Database
from models.notifications_tables import NotificationInbox
from models.subscription_tables import Subscription, WebhookDelivery
from models.subscriptions import WebhookSettings
from models.ticket import TicketEvent, TicketState
from store import subscriptions as store
from store import tickets as ticket_store
from tests.activities.test_notify import free_port

pytestmark = pytest.mark.asyncio

ALL = ["created", "assigned", "status_changed", "sla_breached", "approval_decided", "resolved", "closed"]
FAST = WebhookSettings(webhook_poll_s=0.05, webhook_backoff_s=0.05, webhook_backoff_max_s=0.2, webhook_pause_after=10)
PAUSE_SOON = FAST.model_copy(update={"webhook_pause_after": 3})


@dataclass
class Hit:
    valid: bool
    status: int
    event_id: str
    body: dict
    at: float


@dataclass
class Endpoint:
    secret: str = ""
    script: list[int] = field(default_factory=list)  # statuses to answer first, then 200
    always: int | None = None
    delay_s: float = 0.0
    hits: list[Hit] = field(default_factory=list)

    async def handle(self, request: Request) -> JSONResponse:
        raw, h = await request.body(), request.headers
        try:
            verify([self.secret], h.get("x-ticketflow-timestamp"), h.get("x-ticketflow-signature"), raw)
            valid = True
        except BadSignature:
            valid = False
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.always or (self.script.pop(0) if self.script else 200)
        body = await request.json()
        valid = valid and h.get("x-ticketflow-event-id") == body.get("event_id") == h.get("idempotency-key")
        self.hits.append(Hit(valid, status, body.get("event_id", ""), body, time.monotonic()))
        return JSONResponse({"ok": status == 200}, status_code=status)

    def ok(self) -> list[dict]:
        return [h.body for h in self.hits if h.status == 200]


@dataclass
class Receiver:
    base: str = ""
    ends: dict[str, Endpoint] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Endpoint:
        return self.ends.setdefault(name, Endpoint())


@pytest.fixture
async def receiver(db: Database) -> AsyncIterator[Receiver]:
    rec, port = Receiver(), free_port()

    async def route(request: Request) -> JSONResponse:
        return await rec[request.path_params["name"]].handle(request)

    app = Starlette(routes=[Route("/{name}", route, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    rec.base = f"http://127.0.0.1:{port}"
    yield rec
    server.should_exit = True
    await task
    async with db.session() as s:  # this test's subscriptions go with it (the database is shared)
        for row in (await s.exec(select(Subscription))).all():
            if row.url.startswith(rec.base):
                await store.delete(s, row.id)
        await s.commit()


async def subscribe(stack, rec: Receiver, name: str, actor: str = "admin", **body) -> dict:
    body = {"url": f"{rec.base}/{name}", "events": ALL, **body}
    r = await stack.http.post("/subscriptions", json=body, headers=stack.as_actor(actor))
    assert r.status_code == 201, r.text
    out = r.json()
    rec[name].secret = out["secret"]
    return out


async def act(stack, tid: str, action: str, actor: str = "eng-li", **body) -> None:
    r = await stack.act(tid, action, actor, **body)
    assert r.status_code == 200, (action, r.text)


async def life(stack) -> str:
    r = await stack.create(title=f"Pump {uuid.uuid4().hex[:6]} leaking")
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"])
    await act(stack, tid, "claim")
    await act(stack, tid, "start")
    await stack.until(tid, lambda t: "resolve" in t["allowed_actions"], actor="eng-li")
    await act(stack, tid, "resolve", resolution="seal replaced")
    await stack.until(tid, lambda t: "close" in t["allowed_actions"], actor="agent-wang")
    await act(stack, tid, "close", "agent-wang")
    return tid


async def drain(db: Database, until, settings: WebhookSettings = FAST, timeout: float = 20.0) -> None:
    """Delivery passes, each by a new sender (a worker restart between any two), until ``until()``."""
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        sender = webhooks.Sender(db, settings, development=True)
        try:
            await sender.deliver_due()
        finally:
            await sender.aclose()
        await asyncio.sleep(0.05)


async def test_each_event_once_in_order_signed_across_an_outage_and_scoped_by_region(stack, db, receiver):
    a = await subscribe(stack, receiver, "a")
    receiver["a"].script = [500, 500, 503]  # the receiver is down for the first three calls
    await subscribe(stack, receiver, "south", filters={"regions": ["south"]})
    chen = f"sub_{uuid.uuid4().hex[:24]}"  # a subscriber whose owner sees only the south region
    async with db.session() as s:
        s.add(Subscription(id=chen, owner_id="agent-chen", url=f"{receiver.base}/chen", events=ALL,
                           secret="x" * 40, created_at=datetime.now(UTC)))  # fmt: skip
        await s.commit()

    tid = await life(stack)
    await drain(db, lambda: any(b["event"] == "closed" for b in receiver["a"].ok()))

    hits = receiver["a"].hits
    assert all(h.valid for h in hits)
    ok = [b for b in receiver["a"].ok() if b["ticket_id"] == tid]
    keys = [(b["seq"], b["event"]) for b in ok]
    assert len(keys) == len(set(keys)), "an event delivered twice"
    assert [b["seq"] for b in ok] == sorted(b["seq"] for b in ok), "out of seq order"
    names = [b["event"] for b in ok]
    for wanted in ("created", "assigned", "status_changed", "resolved", "closed"):
        assert wanted in names
    assert names[0] == "created" and names[-1] == "closed"
    assert ok[-1]["ticket"]["status"] == "closed" and ok[-1]["to_status"] == "closed"
    assert [h.status for h in hits[:3]] == [500, 500, 503]
    assert receiver["south"].hits == [] and receiver["chen"].hits == []

    # the delivery log
    r = await stack.http.get(f"/subscriptions/{a['id']}/deliveries?limit=2", headers=stack.as_actor("admin"))
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    log = page["items"]
    while page["next_cursor"]:
        page = (
            await stack.http.get(
                f"/subscriptions/{a['id']}/deliveries?limit=2&cursor={page['next_cursor']}",
                headers=stack.as_actor("admin"),
            )
        ).json()
        log += page["items"]
    mine = [d for d in log if d["ticket_id"] == tid]
    assert {d["status"] for d in mine} == {"delivered"} and all(d["response_code"] == 200 for d in mine)
    first = min(mine, key=lambda d: (d["seq"], d["id"]))
    assert first["attempts"] == 4 and first["event"] == "created"

    # redelivery: the same event id again, once more
    r = await stack.http.post(
        f"/subscriptions/{a['id']}/deliveries/{first['id']}/redeliver", headers=stack.as_actor("admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending"
    before = len(receiver["a"].hits)
    await drain(db, lambda: len(receiver["a"].hits) > before)
    assert receiver["a"].hits[-1].event_id == first["event_id"] and receiver["a"].hits[-1].valid


async def test_a_failing_slow_subscriber_is_paused_without_delaying_another(stack, db, receiver):
    bad = await subscribe(stack, receiver, "bad", events=["created"])
    receiver["bad"].always, receiver["bad"].delay_s = 500, 1.0
    await subscribe(stack, receiver, "good", events=["created", "assigned"])
    stop = asyncio.Event()
    loop = asyncio.create_task(webhooks.run(db, stack.settings, stop, PAUSE_SOON))
    try:
        started = time.monotonic()
        tids = []
        for _ in range(3):
            r = await stack.create(title="Valve stuck")
            assert r.status_code == 201, r.text
            tids.append(r.json()["ticket_id"])
        deadline = time.monotonic() + 10
        while len([b for b in receiver["good"].ok() if b["event"] == "created"]) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        good_done = time.monotonic() - started
        assert {b["ticket_id"] for b in receiver["good"].ok() if b["event"] == "created"} == set(tids)
        assert good_done < 3.0 + 1.0, good_done  # the bad one takes 1 s per attempt, in its own lane
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = await stack.http.get(f"/subscriptions/{bad['id']}", headers=stack.as_actor("admin"))
            if r.json()["state"] == "paused":
                break
            await asyncio.sleep(0.1)
        assert r.json()["state"] == "paused" and r.json()["failure_streak"] >= 3
    finally:
        stop.set()
        await loop
    async with db.session() as s:
        q = select(NotificationInbox).where(NotificationInbox.actor_id == "admin")
        told = (await s.exec(q.where(NotificationInbox.event == "subscription_paused"))).all()
    assert any(bad["id"] in n.title for n in told)
    # paused: nothing more is tried; resumed: the waiting deliveries go out once the receiver is back
    calls = len(receiver["bad"].hits)
    await drain(db, lambda: False, timeout=0.5)
    assert len(receiver["bad"].hits) == calls
    receiver["bad"].always, receiver["bad"].delay_s = None, 0.0
    r = await stack.http.post(f"/subscriptions/{bad['id']}/resume", headers=stack.as_actor("admin"))
    assert r.status_code == 200 and r.json()["state"] == "active" and r.json()["failure_streak"] == 0
    await drain(db, lambda: {b["ticket_id"] for b in receiver["bad"].ok()} >= set(tids))
    assert {b["ticket_id"] for b in receiver["bad"].ok()} >= set(tids)


async def test_a_hidden_field_never_appears(stack, db, receiver):
    """Owned by a machine account (role channel), the ERP gateway's subscription never sees the
    repair cost (visible to finance, supervisors, managers); the admin's does."""
    erp = await subscribe(stack, receiver, "erp", actor="gateway-erp", events=["created", "resolved"])
    admin = await subscribe(stack, receiver, "adm", events=["created", "resolved"])
    tid = f"T{uuid.uuid4().hex[:16].upper()}"
    now = datetime.now(UTC)
    state = TicketState(ticket_id=tid, ticket_type="equipment_repair", region="east", priority=Priority.NORMAL,
                        title="Chiller", created_by="agent-wang", created_at=now, updated_at=now, seq=2,
                        status=TicketStatus.RESOLVED, fields={"repair_cost": "880.00"})  # fmt: skip
    events = [
        TicketEvent(ticket_id=tid, seq=1, action="created", actor_id="agent-wang", from_status=None,
                    to_status=TicketStatus.NEW, at=now),
        TicketEvent(ticket_id=tid, seq=2, action="resolve", actor_id="eng-li", from_status=TicketStatus.IN_PROGRESS,
                    to_status=TicketStatus.RESOLVED, at=now, data={"fields": {"repair_cost": "880.00"}}),
    ]  # fmt: skip
    await ticket_store.record_changes(db, state, events)
    await ticket_store.record_changes(db, state, events)  # a repeat adds nothing
    await drain(db, lambda: len(receiver["erp"].ok()) >= 2 and len(receiver["adm"].ok()) >= 2)
    erp_bodies = [b for b in receiver["erp"].ok() if b["ticket_id"] == tid]
    assert [b["event"] for b in erp_bodies] == ["created", "resolved"]
    assert all(h.valid for h in receiver["erp"].hits)
    assert "880.00" not in str(erp_bodies) and "repair_cost" not in str(erp_bodies)
    adm_bodies = [b for b in receiver["adm"].ok() if b["ticket_id"] == tid]
    assert adm_bodies[-1]["ticket"]["fields"]["repair_cost"] == "880.00"
    assert adm_bodies[-1]["detail"]["fields"] == {"repair_cost": "880.00"}
    async with db.session() as s:
        n = (await s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == erp["id"]))).all()
    assert len(n) == 2
    assert admin["id"] != erp["id"]


async def test_an_erp_ticket_reports_its_resolution_back_to_the_erp(stack, db, receiver):
    """Status sync: the source's mapping names a URL and a body template per status; the
    ticket the ERP raised reports "resolved" there, signed with the ERP's own secret, rendered
    from the ticket; another source's tickets and other events are not reported."""
    from tests.api.test_integrations import event, post, register

    code, secret = await register(stack, "erp")
    rules = {
        "rules": [{"name": "line_stop", "event_type": "line.stopped", "template": "general", "region": "east",
                   "title": "Line {$.data.line} stopped", "external_ref": "$.data.order"}],
        "status_sync": {
            "url": f"{receiver.base}/erp",
            "statuses": {"resolved": '{"order": {{ ticket.external_ref | tojson }}, "state": "installation done",'
                                     ' "note": {{ ticket.resolution | tojson }}}'},
        },
    }  # fmt: skip
    bad = {**rules, "status_sync": {"url": f"{receiver.base}/erp", "statuses": {"resolved": "{{ ticket.id "}}}
    r = await stack.http.put(f"/integrations/{code}/mapping", json=bad, headers=stack.as_actor("tmpl-admin"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "resolved", r.text
    bad = {**rules, "status_sync": {"url": "http://erp.example.com/x", "statuses": {"resolved": "{}"}}}
    r = await stack.http.put(f"/integrations/{code}/mapping", json=bad, headers=stack.as_actor("tmpl-admin"))
    assert r.status_code == 422 and "url" in r.json()["detail"][0]["loc"], r.text
    r = await stack.http.put(f"/integrations/{code}/mapping", json=rules, headers=stack.as_actor("tmpl-admin"))
    assert r.status_code == 201, r.text
    receiver["erp"].secret = secret  # the ERP verifies with the secret it already signs its events with

    order = f"SO-{uuid.uuid4().hex[:8]}"
    r = await post(stack, code, secret, event("line.stopped", {"line": "L7", "order": order}))
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    other = await stack.create(title="Not from the ERP")  # same region, an agent's ticket: not reported
    await stack.until(tid, lambda t: t["active"] == ["work"])
    for action, body in (("claim", {}), ("start", {}), ("resolve", {"resolution": "belt replaced"})):
        assert (await stack.act(tid, action, "eng-li", **body)).status_code == 200
    await drain(db, lambda: bool(receiver["erp"].ok()))
    await drain(db, lambda: False, timeout=0.3)
    hits = receiver["erp"].hits
    assert [h.body for h in hits] == [{"order": order, "state": "installation done", "note": "belt replaced"}]
    assert hits[0].status == 200
    async with db.session() as s:
        subs = (await s.exec(select(Subscription).where(Subscription.source == code))).all()
        (sub,) = subs
        rows = (await s.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))).all()
    assert sub.owner_id == "gateway-erp" and sub.events == ["resolved"]
    assert [(d.ticket_id, d.event, d.status) for d in rows] == [(tid, "resolved", "delivered")]
    assert other.json()["ticket_id"] not in {d.ticket_id for d in rows}
    # a new mapping without status_sync turns it off
    r = await stack.http.put(f"/integrations/{code}/mapping", json={"rules": rules["rules"]},
                             headers=stack.as_actor("tmpl-admin"))  # fmt: skip
    assert r.status_code == 201, r.text
    async with db.session() as s:
        assert (await s.exec(select(Subscription).where(Subscription.source == code))).all() == []
