"""Issue #9's probes on tickets, over HTTP against the real app, dev server, worker and database.

Each of these answered wrongly before: an agent rewrote an approved amount with an event, an
engineer confirmed for the customer, a repeated Idempotency-Key made two comments, an action
with the worker down hung and applied later, a ticket's events came unpaginated and showed
hidden fields, allowed_actions offered actions the caller could not take, and the assignee kept
naming someone whose task was done.
"""

import asyncio
import time

import httpx
import pytest
from sqlalchemy import text
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from tests.conftest import settings_for, task_queue
from workers.main import build_worker

pytestmark = pytest.mark.asyncio

MONEY = {"amount": "5000.00", "currency": "CNY"}


async def event(stack, tid: str, actor: str, name: str, key: str | None = None, **body) -> httpx.Response:
    headers = stack.as_actor(actor) | ({"Idempotency-Key": key} if key else {})
    return await stack.http.post(f"/tickets/{tid}/events", json={"name": name, **body}, headers=headers)


async def test_an_approved_amount_cannot_be_rewritten_by_an_event(stack):
    """Probe: 5,000 approved by the manager alone, then the agent's "note" event set 9,999,999
    (202) and the ticket closed at that amount without finance or the general manager."""
    fields = {"customer": "ACME", "amount": MONEY, "justification": "framework order"}
    r = await stack.create(ticket_type="discount_approval", title="Discount", fields=fields)
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: (t["nodes"].get("approve") or {}).get("approvers"))
    assert (await stack.act(tid, "approve", actor="mgr-sun")).status_code == 200
    await stack.until(tid, lambda t: t["status"] == "resolved")

    forged = {"amount": {"amount": "9999999", "currency": "CNY"}}
    r = await event(stack, tid, "agent-wang", "note", fields=forged)
    assert r.status_code == 422, r.text  # not an event this ticket takes
    assert r.json()["detail"][0]["loc"] == ["body", "name"]
    r = await event(stack, tid, "agent-wang", "customer_reply", fields=forged)
    assert r.status_code == 422, r.text  # a real event, but it may not set the amount
    assert r.json()["detail"][0]["loc"] == ["body", "fields", "amount"]
    assert (await stack.act(tid, "close", actor="agent-wang")).status_code == 200
    t = (await stack.get(tid, "admin")).json()
    assert (t["status"], t["fields"]["amount"]) == ("closed", MONEY)
    assert t["frozen"]["amount"] == "approve"


async def test_only_the_customer_side_confirms_a_repair(stack):
    """Probe: an engineer sent customer_confirmed and the ticket resolved."""
    fields = {"device_id": "CMP-0042", "fault": "noise"}
    r = await stack.create(ticket_type="equipment_repair", title="Noisy compressor", fields=fields)
    tid = r.json()["ticket_id"]
    r = await event(stack, tid, "eng-li", "customer_confirmed")
    assert r.status_code == 403, r.text
    r = await event(stack, tid, "gateway-qr", "customer_confirmed")  # the channel gateway speaks for them
    assert r.status_code == 202, r.text
    t = await stack.until(tid, lambda t: t["unclaimed_events"], actor="admin")
    assert [(e["action"], e["actor_id"]) for e in t["events"] if e["action"].startswith("event:")] == [
        ("event:customer_confirmed", "gateway-qr")
    ]


async def test_a_repeated_idempotency_key_acts_once(stack):
    """Probe: the same Idempotency-Key twice made two comments."""
    tid = (await stack.create()).json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"])
    headers = stack.as_actor("agent-wang") | {"Idempotency-Key": "comment-1"}
    first = await stack.http.post(f"/tickets/{tid}/actions/comment", json={"text": "on my way"}, headers=headers)
    again = await stack.http.post(f"/tickets/{tid}/actions/comment", json={"text": "on my way"}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200), (first.text, again.text)
    assert again.json()["comment_count"] == first.json()["comment_count"] == 1
    other = await stack.http.post(f"/tickets/{tid}/actions/comment", json={"text": "something else"}, headers=headers)
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"], other.text
    r = await event(stack, tid, "agent-wang", "customer_reply", key="reply-1", text="yes")
    r2 = await event(stack, tid, "agent-wang", "customer_reply", key="reply-1", text="yes")
    assert (r.status_code, r2.status_code) == (202, 202), (r.text, r2.text)
    t = (await stack.get(tid)).json()
    assert t["comment_count"] == 1
    assert [e["action"] for e in t["events"]].count("event:customer_reply") == 1


async def test_with_the_worker_down_an_action_is_a_prompt_504_and_never_applies_later(db, database_url, devserver):
    """Probe: with the worker down, actions hung for minutes and applied after the client gave up."""
    settings = settings_for(database_url, devserver, task_queue()).model_copy(update={"action_timeout_s": 2.0})
    app = create_app(settings, client=devserver.client)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test")
        from models.demo import demo_api_key

        agent = {"X-API-Key": demo_api_key("agent-wang")}
        worker = build_worker(devserver.client, settings)
        async with worker:
            tid = (
                await http.post(
                    "/tickets", json={"ticket_type": "general", "region": "east", "title": "t"}, headers=agent
                )
            ).json()["ticket_id"]
            for _ in range(200):  # the task is open and the read model has it (the projection is done)
                t = (await http.get(f"/tickets/{tid}", headers=agent)).json()
                if t["active"] and any(e["action"] == "task_opened" for e in t["events"] or []):
                    break
                await asyncio.sleep(0.05)
        began = time.monotonic()  # the worker is gone
        r = await http.post(f"/tickets/{tid}/actions/comment", json={"text": "anyone?"}, headers=agent)
        assert r.status_code == 504, r.text
        assert time.monotonic() - began < 10
        assert r.json()["applied"] is False
        async with build_worker(devserver.client, settings):  # back: the late comment is refused, not applied
            for _ in range(5):  # a worker just started may take longer than 2 s to answer: 504 again, not applied
                r = await http.post(f"/tickets/{tid}/actions/comment", json={"text": "now"}, headers=agent)
                if r.status_code != 504:
                    break
            assert r.status_code == 200, r.text
            assert r.json()["comment_count"] == 1  # one comment: none of the 504s was applied
        await http.aclose()


async def test_a_tickets_events_come_a_page_at_a_time(stack):
    """Probe: GET /tickets/{id} returned every event (466 KB after a flood)."""
    tid = (await stack.create()).json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"])
    for i in range(55):
        assert (await stack.act(tid, "comment", actor="agent-wang", text=f"note {i}")).status_code == 200
    t = (await stack.get(tid)).json()
    assert len(t["events"]) == 50 and t["more_events"] is True
    assert t["events"][-1]["seq"] == t["seq"]  # the latest
    seqs, after = [], 0
    while after is not None:
        page = (
            await stack.http.get(
                f"/tickets/{tid}/events", params={"after_seq": after, "limit": 20}, headers=stack.as_actor("agent-wang")
            )
        ).json()
        seqs += [e["seq"] for e in page["items"]]
        after = page["next_after_seq"]
    assert seqs == list(range(1, t["seq"] + 1))


async def test_fields_hidden_from_a_role_are_hidden_in_the_events_too(stack):
    """Probe: compensation (supervisors, managers, finance) showed in events[].data.fields."""
    fields = {"customer_tier": "vip", "complaint": "late delivery"}
    tid = (await stack.create(ticket_type="complaint", title="Complaint", fields=fields)).json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"] == ["supervisor"])
    for action, body in [
        ("claim", {}),
        ("start", {}),
        ("complete", {"fields": {"compensation": {"amount": "500", "currency": "CNY"}}}),
    ]:
        r = await stack.act(tid, action, actor="sup-zhou", **body)
        assert r.status_code == 200, r.text
    agent = (await stack.get(tid, "agent-wang")).json()
    assert "compensation" not in agent["fields"]
    done = [e for e in agent["events"] if e["action"] == "complete"]
    assert done and all("compensation" not in e["data"].get("fields", {}) for e in done)
    page = (await stack.http.get(f"/tickets/{tid}/events", headers=stack.as_actor("agent-wang"))).json()
    assert all("compensation" not in e["data"].get("fields", {}) for e in page["items"])
    supervisor = (await stack.get(tid, "sup-zhou")).json()
    assert [e["data"]["fields"] for e in supervisor["events"] if e["action"] == "complete"] == [
        {"compensation": {"amount": "500", "currency": "CNY"}}
    ]


async def test_allowed_actions_are_the_callers_own(stack):
    """Probe: allowed_actions listed approve to an agent, who then got 403."""
    fields = {"customer": "ACME", "amount": MONEY, "justification": "framework order"}
    tid = (await stack.create(ticket_type="discount_approval", title="Discount", fields=fields)).json()["ticket_id"]
    await stack.until(tid, lambda t: (t["nodes"].get("approve") or {}).get("approvers"))
    agent = (await stack.get(tid, "agent-wang")).json()
    manager = (await stack.get(tid, "mgr-sun")).json()
    assert "approve" not in agent["allowed_actions"] and "approve" in agent["ticket_actions"]
    assert {"approve", "reject", "delegate"} <= set(manager["allowed_actions"])
    assert (await stack.act(tid, "approve", actor="agent-wang")).status_code == 403


async def test_the_assignee_is_whoever_holds_the_open_work(stack):
    """Probe: after the diagnosis was done, the top-level assignee still named its engineer."""
    fields = {"device_id": "CMP-0042", "fault": "noise", "site": {"lat": 31.23, "lon": 121.47}}
    tid = (await stack.create(ticket_type="equipment_repair", title="Noisy", fields=fields)).json()["ticket_id"]
    t = await stack.until(tid, lambda t: (t["nodes"].get("diagnose") or {}).get("assignee"), actor="admin")
    engineer = t["nodes"]["diagnose"]["assignee"]
    assert t["assignee"] == engineer
    assert (await stack.act(tid, "start", actor=engineer)).status_code == 200
    r = await stack.act(tid, "complete", actor=engineer, fields={"diagnosis": "loose panel", "parts_needed": False})
    assert r.status_code == 200, r.text
    t = await stack.until(tid, lambda t: t["active"] == ["repair"], actor="admin")
    assert t["nodes"]["repair"]["assignee"] is None and t["assignee"] is None
    listed = (await stack.http.get("/tickets", params={"assignee": engineer}, headers=stack.as_actor("admin"))).json()
    assert tid not in [i["id"] for i in listed["items"]]


async def test_a_database_that_cannot_take_the_ticket_starts_nothing(stack, db, devserver):
    """Probe: with the database locked the API answered 500 after 30 s though the ticket had
    started (a ghost whose projection failed forever). Now the row comes first: 503 at once,
    and no workflow."""
    key = "locked-db-ticket"
    async with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await conn.begin()
            await conn.execute(text("LOCK TABLE ticket IN EXCLUSIVE MODE"))
        began = time.monotonic()
        try:
            r = await asyncio.wait_for(stack.create(idempotency_key=key), 20)
        finally:
            answered = time.monotonic() - began
            await conn.rollback()
    assert r.status_code == 503, r.text
    assert answered < 15, answered
    from domain.ids import ticket_id_for_key

    tid = ticket_id_for_key(f"key:{key}")
    with pytest.raises(RPCError) as missing:  # no workflow was started for it
        await devserver.client.get_workflow_handle(f"ticket-{tid}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND, missing.value
    assert (await stack.create(idempotency_key=key)).status_code == 201  # the same request, later: made once


async def test_form_values_are_bounded_in_all(stack):
    """Each value has its own limit (domain/forms.py); together they stay under 64 KB a request."""
    fields = {"customer_tier": "regular", "complaint": "😀" * 17_000}  # 17,000 characters, 68 KB
    r = await stack.create(ticket_type="complaint", title="Complaint", fields=fields)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "fields"]


async def test_a_channel_account_reads_only_its_own_tickets_and_raises_no_internal_process(stack):
    """Attacker review: gateway-erp listed every ticket of every region, read an internal
    discount request, commented on gateway-qr's tickets, read stock and prices, and raised a
    discount approval."""
    mine = (await stack.create(actor="gateway-qr", channel="web", title="Printer jammed")).json()["ticket_id"]
    staff = (await stack.create(title="Internal")).json()["ticket_id"]
    erp = stack.as_actor("gateway-erp")
    listed = (await stack.http.get("/tickets", headers=erp)).json()["items"]
    assert mine not in [t["id"] for t in listed] and staff not in [t["id"] for t in listed]
    assert (await stack.get(mine, "gateway-erp")).status_code == 404
    assert (await stack.get(mine, "gateway-qr")).status_code == 200  # its own
    r = await stack.act(mine, "comment", actor="gateway-qr", text="hello")
    assert r.status_code == 403, r.text  # events only
    for path in ("/inventory/stock", "/pricing/east", "/reports/overview"):
        assert (await stack.http.get(path, headers=erp)).status_code == 403, path
    fields = {"customer": "ACME", "amount": MONEY, "justification": "x"}
    r = await stack.create(actor="gateway-erp", ticket_type="discount_approval", channel="erp", fields=fields)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "channel"], r.text
    r = await stack.create(actor="gateway-erp", ticket_type="discount_approval", channel="agent", fields=fields)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "channel"], r.text


async def test_an_action_sent_without_its_body_names_the_missing_fields(stack):
    """A newcomer's stumble: reopen without a body answered "body: Field required"."""
    tid = (await stack.create()).json()["ticket_id"]
    r = await stack.http.post(f"/tickets/{tid}/actions/reopen", headers=stack.as_actor("agent-wang"))
    assert r.status_code == 422, r.text
    assert [p["loc"] for p in r.json()["detail"]] == [["body", "reason"]]


async def test_the_browser_finds_a_tab_icon(stack):
    r = await stack.http.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")


async def test_an_event_for_a_closed_ticket_is_409_and_changes_nothing(stack):
    tid = (await stack.create()).json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"])
    assert (await stack.act(tid, "cancel", actor="agent-wang", reason="duplicate")).status_code == 200
    before = (await stack.get(tid)).json()["seq"]
    r = await event(stack, tid, "agent-wang", "customer_reply", text="too late")
    assert r.status_code == 409, r.text
    assert (await stack.get(tid)).json()["seq"] == before
