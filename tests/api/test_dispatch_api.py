"""Dispatch and the task actions over HTTP (real app, dev server, worker, demo roster).

The demo roster decides who is offered or given the work; the tests act as those people.
"""

import asyncio

import pytest

pytestmark = pytest.mark.asyncio

PUDONG = {"lat": 31.2304, "lon": 121.4737, "address": "88 Century Ave, Pudong"}


async def _installation(stack) -> tuple[str, list[str]]:
    """An installation ticket scheduled by the agent; returns it and the grab-pool offerees."""
    body = {"ticket_type": "installation", "fields": {"order_no": "ERP-1", "product": "Heat pump", "address": PUDONG}}
    r = await stack.create(**body)
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"] == ["schedule"])
    for action, extra in (
        ("claim", {}),
        ("start", {}),
        ("complete", {"fields": {"appointment": "2026-12-03T14:00:00+08:00"}}),
    ):
        r = await stack.act(tid, action, actor="agent-wang", **extra)
        assert r.status_code == 200, r.text
    t = await stack.until(tid, lambda t: (t["nodes"].get("install") or {}).get("offer_until"))
    install = t["nodes"]["install"]
    assert install["offers"], install
    return tid, install["offers"]


async def test_grab_pool_race_over_http_one_wins_the_other_gets_409(stack):
    tid, offers = await _installation(stack)
    assert len(offers) == 3  # the template's top_n
    t = (await stack.get(tid, actor="admin")).json()
    [offered] = [e for e in t["events"] if e["action"] == "offered"]
    assert offered["data"]["offers"] == offers and len(offered["data"]["candidates"]) == 3
    assert all("score" in c and "distance_km" in c for c in offered["data"]["candidates"])

    first, second = offers[:2]
    r1, r2 = await asyncio.gather(stack.act(tid, "claim", actor=first), stack.act(tid, "claim", actor=second))
    codes = sorted([r1.status_code, r2.status_code])
    assert codes == [200, 409], (r1.text, r2.text)
    winner = first if r1.status_code == 200 else second
    loser = r2 if r1.status_code == 200 else r1
    assert loser.json()["status"] == "assigned" and "claim" not in loser.json()["allowed_actions"]
    t = await stack.until(tid, lambda t: t["nodes"]["install"]["assignee"] == winner)
    assert t["nodes"]["install"]["status"] == "assigned"


async def test_delegate_return_and_request_info_over_http(stack):
    tid, offers = await _installation(stack)
    me, other = offers[0], offers[1]
    assert (await stack.act(tid, "claim", actor=me)).status_code == 200
    assert (await stack.act(tid, "start", actor=me)).status_code == 200

    r = await stack.act(tid, "delegate", actor=me, to=me)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "to"], r.text
    r = await stack.act(tid, "delegate", actor=me, to="nobody-here")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "unknown_assignee", r.text
    r = await stack.act(tid, "delegate", actor=other, to=other)
    assert r.status_code == 422  # to yourself, whoever you are
    r = await stack.act(tid, "delegate", actor="eng-huang", to="eng-li")
    assert r.status_code in (403, 404)  # south engineer: not their ticket, not their region

    r = await stack.act(tid, "delegate", actor=me, to=other, reason="stuck on another site")
    assert r.status_code == 200, r.text
    assert (r.json()["nodes"]["install"]["assignee"], r.json()["nodes"]["install"]["delegations"]) == (
        other,
        {other: me},
    )
    r = await stack.act(tid, "return", actor=other)
    assert r.status_code == 200 and r.json()["nodes"]["install"]["assignee"] == me, r.text

    r = await stack.act(tid, "request_info", actor=me, question="Is there a power socket near the unit?")
    assert r.status_code == 200, r.text
    assert r.json()["nodes"]["install"]["awaiting_info"] == "Is there a power socket near the unit?"
    assert "request_info" not in r.json()["allowed_actions"]
    t = await stack.until(
        tid, lambda t: t["sla"]["clocks"] == {} or all(c["running_since"] is None for c in t["sla"]["clocks"].values())
    )
    r = await stack.http.post(
        f"/tickets/{tid}/events",
        json={"name": "customer_reply", "text": "Yes, next to it"},
        headers=stack.as_actor("gateway-qr"),
    )
    assert r.status_code == 202, r.text
    t = await stack.until(tid, lambda t: t["nodes"]["install"]["awaiting_info"] is None)
    assert "request_info" in t["allowed_actions"]
