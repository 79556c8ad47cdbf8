"""The HTTP contract, end to end: real app (httpx), real dev server, in-process worker, real DB."""

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import EventType

from api.app import create_app
from models.db import Database
from models.settings import Settings
from store import keyset

pytestmark = pytest.mark.asyncio


async def test_ticket_whole_life_over_http(stack):
    r = await stack.create(title="Line 2 conveyor stopped", priority="high")
    assert r.status_code == 201, r.text
    t = r.json()
    tid = t["ticket_id"]
    assert (t["status"], t["priority"], t["workflow_id"]) == ("new", "high", f"ticket-{tid}")
    t = await stack.until(tid, lambda t: t["active"])  # the workflow opens its first task
    assert t["active"] == ["work"] and t["nodes"]["work"]["candidates"] == "role:engineer"
    # SLA clocks run in the region's business calendar (east: Mon–Fri 09–12, 13–18, Shanghai).
    response = t["sla"]["clocks"]["response"]
    assert response["target"] == "PT2H" and response["due"] is not None and not t["sla"]["breached"]
    due = datetime.fromisoformat(response["due"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert due.weekday() < 5 and (9 <= due.hour < 12 or 13 <= due.hour <= 18)
    assert t["allowed_actions"] == ["claim", "assign", "cancel", "comment", "change_priority"]

    steps = [
        ("claim", "eng-li", {}, "assigned"),
        ("comment", "eng-li", {"text": "on my way"}, "assigned"),
        ("start", "eng-li", {}, "in_progress"),
        ("resolve", "eng-li", {"resolution": "belt re-tensioned"}, "resolved"),
        ("reopen", "agent-wang", {"reason": "stopped again"}, "in_progress"),
        ("assign", "sup-zhou", {"assignee": "eng-zhao"}, "in_progress"),
        ("resolve", "eng-zhao", {"resolution": "motor replaced"}, "resolved"),
        ("close", "agent-wang", {}, "closed"),
    ]
    for action, actor, body, expected in steps:
        r = await stack.act(tid, action, actor, **body)
        assert r.status_code == 200, (action, r.text)
        assert r.json()["status"] == expected, action

    r = await stack.get(tid)
    assert r.status_code == 200
    t = r.json()
    assert (t["status"], t["assignee"], t["resolution"], t["comment_count"]) == (
        "closed",
        "eng-zhao",  # who did the last of the work
        "motor replaced",
        1,
    )
    assert t["allowed_actions"] == []
    events = t["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    human = [e for e in events if e["actor_id"] != "system"]
    assert [e["action"] for e in human] == ["created"] + [s[0] for s in steps]
    system = [e["action"] for e in events if e["actor_id"] == "system"]
    assert system == ["task_opened", "resolved", "resolved"]
    assert [(e["from_status"], e["to_status"]) for e in events[:4]] == [
        (None, "new"),
        ("new", "new"),
        ("new", "assigned"),
        ("assigned", "assigned"),
    ]
    assign = next(e for e in events if e["action"] == "assign")
    assert assign["data"] == {"node": "work", "assignee": "eng-zhao", "previous": "eng-li"}

    r = await stack.http.get(
        "/tickets", params={"status": "closed", "assignee": "eng-zhao"}, headers=stack.as_actor("agent-wang")
    )
    assert tid in [i["id"] for i in r.json()["items"]]


async def test_illegal_transition_is_409_with_state_and_allowed_actions(stack):
    tid = (await stack.create()).json()["ticket_id"]
    handle = stack.client.get_workflow_handle(f"ticket-{tid}")
    await stack.act(tid, "claim")
    history_before = len((await handle.fetch_history()).events)

    r = await stack.act(tid, "close", "agent-wang")
    assert r.status_code == 409
    assert r.json() == {
        "detail": "cannot close a ticket that is assigned",
        "code": "invalid_transition",
        "status": "assigned",
        "allowed_actions": ["assign", "start", "cancel", "comment", "delegate", "request_info", "change_priority"],
    }
    # A rejected update leaves no trace in the workflow history on the real server.
    history = (await handle.fetch_history()).events
    assert len(history) == history_before
    assert not [e for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED]

    await stack.act(tid, "cancel", "agent-wang", reason="customer withdrew")
    r = await stack.act(tid, "comment", text="too late")
    assert r.status_code == 409 and r.json()["status"] == "cancelled" and r.json()["allowed_actions"] == []


async def test_unknown_ticket_and_unknown_action(stack):
    assert (await stack.get("TNOSUCHTICKET")).status_code == 404
    assert (await stack.act("TNOSUCHTICKET", "claim")).status_code == 404
    tid = (await stack.create()).json()["ticket_id"]
    assert (await stack.act(tid, "teleport")).status_code == 404


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"ticket_type": "general", "region": "east", "title": ""}, ["body", "title"]),
        ({"ticket_type": "general", "region": "east", "title": "x", "priority": "asap"}, ["body", "priority"]),
        ({"ticket_type": "general", "region": "east", "title": "x", "colour": "red"}, ["body", "colour"]),
        ({"ticket_type": "general", "region": "mars", "title": "x"}, ["body", "region"]),
        ({"ticket_type": "teleport", "region": "east", "title": "x"}, ["body", "ticket_type"]),
    ],
)
async def test_malformed_creation_is_422_naming_the_field(stack, body, loc):
    r = await stack.http.post("/tickets", json=body, headers=stack.as_actor("agent-wang"))
    assert r.status_code == 422, r.text
    assert loc in [d["loc"] for d in r.json()["detail"]]


async def test_malformed_action_bodies_are_422_and_change_nothing(stack):
    tid = (await stack.create()).json()["ticket_id"]
    await stack.act(tid, "claim")
    await stack.act(tid, "start")
    cases = [
        ("resolve", None, ["body", "resolution"]),  # no body: the missing field is named
        ("resolve", {}, ["body", "resolution"]),
        ("resolve", {"resolution": ""}, ["body", "resolution"]),
        ("assign", {"assignee": "nobody"}, ["body", "assignee"]),
        ("assign", {"assignee": "eng-huang"}, ["body", "assignee"]),  # works in another region
        ("comment", {"text": "hi", "extra": 1}, ["body", "extra"]),
    ]
    for action, body, loc in cases:
        r = await stack.http.post(f"/tickets/{tid}/actions/{action}", json=body, headers=stack.as_actor("eng-li"))
        assert r.status_code == 422, (action, r.text)
        assert loc in [d["loc"] for d in r.json()["detail"]], (action, r.json())
    r = await stack.http.post(
        f"/tickets/{tid}/actions/comment",
        content=b"{not json",
        headers={**stack.as_actor("eng-li"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    t = (await stack.get(tid)).json()
    assert (t["status"], t["seq"], len(t["events"])) == ("in_progress", 4, 4)


async def test_repeated_creation_returns_the_same_ticket(stack):
    first = await stack.create(idempotency_key="req-7f3a", title="Freezer alarm")
    assert first.status_code == 201
    again = await stack.create(idempotency_key="req-7f3a", title="Freezer alarm")
    assert again.status_code == 200
    assert again.json()["ticket_id"] == first.json()["ticket_id"]

    reused = await stack.create(idempotency_key="req-7f3a", title="Something else")
    assert reused.status_code == 422
    assert reused.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]

    # Business-system events: the same external reference collapses into one ticket, even when
    # the event is re-sent with different details, and even when many arrive at once.
    sends = await asyncio.gather(
        *[stack.create(channel="erp", external_ref="ERP-ALERT-991", title=f"Pressure alarm #{i}") for i in range(5)]
    )
    assert sorted(r.status_code for r in sends) == [200, 200, 200, 200, 201]
    assert len({r.json()["ticket_id"] for r in sends}) == 1
    listed = await stack.http.get("/tickets", params={"limit": 200}, headers=stack.as_actor("admin"))
    assert sum(1 for i in listed.json()["items"] if i["external_ref"] == "ERP-ALERT-991") == 1


async def test_credentials_and_regional_isolation(stack):
    r = await stack.http.get("/tickets")
    assert r.status_code == 401
    assert (await stack.http.get("/tickets", headers={"X-API-Key": "wrong"})).status_code == 401
    assert (await stack.http.get("/tickets", headers={"X-Actor": "agent-wang"})).status_code == 401  # no secret

    south = (await stack.create(actor="agent-chen", region="south")).json()["ticket_id"]
    assert (await stack.get(south, actor="agent-chen")).status_code == 200
    assert (await stack.get(south, actor="agent-wang")).status_code == 404  # east agent cannot see south
    assert (await stack.act(south, "claim", actor="eng-li")).status_code == 404
    assert (await stack.get(south, actor="admin")).status_code == 200
    east_list = await stack.http.get("/tickets", params={"limit": 200}, headers=stack.as_actor("agent-wang"))
    assert {i["region"] for i in east_list.json()["items"]} <= {"east"}
    assert south not in [i["id"] for i in east_list.json()["items"]]
    r = await stack.create(actor="agent-wang", region="south")
    assert r.status_code == 403


class _NoTemporal:
    """A Temporal client that fails the test if anyone calls it."""

    def __getattr__(self, name):
        raise AssertionError(f"Temporal was called ({name}) for a ticket outside the caller's scope")


async def test_out_of_scope_reads_never_reach_temporal(stack, database_url, db: Database):
    south = (await stack.create(actor="agent-chen", region="south")).json()["ticket_id"]
    app = create_app(Settings(database_url=database_url), client=_NoTemporal())  # type: ignore[arg-type]
    import httpx

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            h = stack.as_actor("agent-wang")
            assert (await http.get(f"/tickets/{south}", headers=h)).status_code == 404
            r = await http.post(f"/tickets/{south}/actions/cancel", json={"reason": "x"}, headers=h)
            assert r.status_code == 404


async def test_list_filters_and_stable_pagination(stack):
    ids = []
    for i in range(5):
        r = await stack.create(actor="agent-chen", region="south", title=f"Printer {i}", priority="low")
        ids.append(r.json()["ticket_id"])
    await stack.act(ids[0], "claim", "eng-huang")

    h = stack.as_actor("agent-chen")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"region": "south", "priority": "low", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await stack.http.get("/tickets", params=params, headers=h)).json()
        seen += [i["id"] for i in page["items"]]
        # A ticket created mid-way does not shift the pages that follow (newest first, keyset).
        if len(seen) == 2:
            await stack.create(actor="agent-chen", region="south", title="late", priority="low")
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    assert seen.index(ids[4]) < seen.index(ids[0])  # newest first

    assigned = (await stack.http.get("/tickets", params={"assignee": "eng-huang", "region": "south"}, headers=h)).json()
    assert [i["id"] for i in assigned["items"]] == [ids[0]]
    now = datetime.now(UTC)
    future = (
        await stack.http.get("/tickets", params={"created_from": (now + timedelta(hours=1)).isoformat()}, headers=h)
    ).json()
    assert future["items"] == []
    bad = await stack.http.get("/tickets", params={"cursor": "%%%"}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]
    # A forged cursor whose time cannot be compared (no zone) or overflows in UTC is malformed too.
    for forged in (("9999-12-31T23:59:59-10:00", "T1"), ("2026-12-01T10:00:00", "T1")):
        r = await stack.http.get("/tickets", params={"cursor": keyset.encode(*forged)}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"], r.text
    assert (await stack.http.get("/tickets", params={"status": "sleeping"}, headers=h)).status_code == 422
    r = await stack.http.get("/tickets", params={"region": "east"}, headers=h)  # agent-chen works in south
    assert r.status_code == 403 and "east" in r.json()["detail"], r.text


async def test_health_and_openapi(stack):
    r = await stack.http.get("/health")
    assert r.status_code == 200 and r.json() == {
        "status": "ok",
        "checks": {"api": "ok", "database": "ok", "temporal": "ok"},
    }
    spec = (await stack.http.get("/openapi.json")).json()
    assert "/tickets/{ticket_id}/actions/resolve" in spec["paths"]
    assert (await stack.http.get("/docs")).status_code == 200


async def test_managers_list_breached_tickets_from_the_read_model(stack, db):
    import uuid

    from models.tables import Ticket

    now = datetime.now(UTC)
    ids = {True: f"B{uuid.uuid4().hex[:10]}", False: f"K{uuid.uuid4().hex[:10]}"}
    async with db.session() as session:
        for breached, tid in ids.items():
            session.add(
                Ticket(
                    id=tid,
                    ticket_type="general",
                    region="east",
                    priority="high",
                    status="in_progress",
                    title="breach list",
                    channel="agent",
                    created_by="agent-wang",
                    created_at=now,
                    updated_at=now,
                    sla_breached=breached,
                    escalation="manager" if breached else None,
                )  # fmt: skip
            )
        await session.commit()
    r = await stack.http.get("/tickets?sla_breached=true&limit=200", headers=stack.as_actor("mgr-sun"))
    assert r.status_code == 200, r.text
    listed = {t["id"]: t for t in r.json()["items"]}
    assert ids[True] in listed and ids[False] not in listed and all(t["sla_breached"] for t in listed.values())
    assert listed[ids[True]]["escalation"] == "manager"
    r = await stack.http.get("/tickets?sla_breached=false&limit=200", headers=stack.as_actor("mgr-sun"))
    assert ids[False] in {t["id"] for t in r.json()["items"]}
