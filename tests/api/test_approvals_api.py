"""A > 100,000 discount over HTTP: three approval levels, the refusals each gives, and a
rejection at level 2 that sends the request back to the requester."""

import pytest

pytestmark = pytest.mark.asyncio

DISCOUNT = {"customer": "ACME Trading", "justification": "three-year framework order"}


async def _discount(stack, amount: str) -> str:
    fields = {**DISCOUNT, "amount": {"amount": amount, "currency": "CNY"}}
    r = await stack.create(ticket_type="discount_approval", title="Framework discount", fields=fields)
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: (t["nodes"].get("approve") or {}).get("approvers"))
    return tid


async def test_three_levels_and_the_refusals_over_http(stack):
    tid = await _discount(stack, "150000.00")
    t = (await stack.get(tid)).json()
    assert t["nodes"]["approve"]["levels"] == ["manager", "finance", "general_manager"]
    assert t["nodes"]["approve"]["approvers"] == ["mgr-sun"]  # the requester's manager

    r = await stack.act(tid, "approve", actor="fin-qian")  # out of turn
    assert r.status_code == 403, r.text
    r = await stack.act(tid, "approve", actor="eng-li")  # not an approver at all
    assert r.status_code == 403, r.text
    r = await stack.act(tid, "approve", actor="mgr-sun", reason="good customer")
    assert r.status_code == 200, r.text
    assert r.json()["nodes"]["approve"]["level"] == 1 and "fin-qian" in r.json()["nodes"]["approve"]["approvers"]
    r = await stack.act(tid, "approve", actor="mgr-sun")  # their level is over
    assert r.status_code == 403, r.text

    r = await stack.act(tid, "approve", actor="fin-qian")
    assert r.status_code == 200 and r.json()["nodes"]["approve"]["level"] == 2, r.text
    r = await stack.act(tid, "approve", actor="gm-zheng")
    assert r.status_code == 200, r.text
    t = await stack.until(tid, lambda t: t["status"] == "resolved")
    assert t["status"] == "resolved" and t["nodes"]["approve"]["outcome"] == "approved"
    votes = [(v["level"], v["actor_id"], v["decision"]) for v in t["nodes"]["approve"]["votes"]]
    assert votes == [(0, "mgr-sun", "approve"), (1, "fin-qian", "approve"), (2, "gm-zheng", "approve")]


async def test_rejection_at_level_two_returns_it_to_the_requester(stack):
    tid = await _discount(stack, "150000.00")
    assert (await stack.act(tid, "approve", actor="mgr-sun")).status_code == 200
    r = await stack.act(tid, "reject", actor="fin-qian")  # a reason is required
    assert r.status_code == 422, r.text
    r = await stack.act(tid, "reject", actor="fin-qian", reason="margin too thin")
    assert r.status_code == 200, r.text
    t = await stack.until(tid, lambda t: t["active"] == ["revise"])
    revise = t["nodes"]["revise"]
    assert (revise["assignee"], revise["status"]) == ("agent-wang", "assigned")  # the requester
    assert t["nodes"]["approve"]["outcome"] == "rejected"
    [rejected] = [e for e in t["events"] if e["action"] == "reject"]
    assert rejected["data"]["reason"] == "margin too thin" and rejected["data"]["level"] == 2
