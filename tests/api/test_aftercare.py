"""What a ticket sets going when its work ends: the satisfaction survey (a workflow of its own)
when it resolves, and the template's follow-ups as Temporal Schedules (listed by GET /schedules,
visible in the Temporal UI) when it closes."""

import pytest

from activities.schedules import follow_up_id
from domain.ids import ticket_id_for_key
from models.surveys import follow_up_key

pytestmark = pytest.mark.asyncio


async def finish_repair(stack) -> str:
    r = await stack.create(
        ticket_type="equipment_repair",
        fields={"device_id": "CMP-7777", "fault": "noise", "site": {"lat": 31.23, "lon": 121.47}},
    )
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: "diagnose" in t["active"])
    assert (await stack.act(tid, "assign", "sup-zhou", assignee="eng-li", node="diagnose")).status_code == 200
    for action, body in (("start", {}), ("complete", {"fields": {"diagnosis": "ok", "parts_needed": False}})):
        assert (await stack.act(tid, action, "eng-li", **body)).status_code == 200, action
    await stack.until(tid, lambda t: "repair" in t["active"])
    for action, body in (
        ("claim", {}),
        ("start", {}),
        ("complete", {"fields": {"minutes_worked": 30, "repair_cost": {"amount": "100", "currency": "CNY"}}}),
    ):
        assert (await stack.act(tid, action, "eng-li", **body)).status_code == 200, action
    await stack.until(tid, lambda t: "confirm" in t["active"])
    r = await stack.http.post(
        f"/tickets/{tid}/events", json={"name": "customer_confirmed"}, headers=stack.as_actor("agent-wang")
    )
    assert r.status_code in (200, 202), r.text
    await stack.until(tid, lambda t: t["status"] == "resolved")
    assert (await stack.act(tid, "close", "agent-wang")).status_code == 200
    return tid


async def test_closing_a_repair_schedules_its_call_back(stack):
    tid = await finish_repair(stack)
    t = await stack.until(tid, lambda t: any(e["action"] == "follow_up_scheduled" for e in t["events"]), "admin")
    (scheduled,) = [e for e in t["events"] if e["action"] == "follow_up_scheduled"]
    assert scheduled["data"]["schedule"] == follow_up_id(tid, "call_back")
    handle = stack.client.get_schedule_handle(follow_up_id(tid, "call_back"))
    described = await handle.describe()
    assert described.schedule.state.remaining_actions == 1
    listed = (
        await stack.http.get("/schedules", params={"source_ticket": tid}, headers=stack.as_actor("sup-zhou"))
    ).json()
    assert [s["id"] for s in listed["items"]] == [follow_up_id(tid, "call_back")]


async def test_resolving_a_repair_sends_its_survey_once(stack):
    tid = await finish_repair(stack)
    t = await stack.until(tid, lambda t: any(e["action"] == "survey_sent" for e in t["events"]), "admin")
    assert [e["data"]["survey"] for e in t["events"] if e["action"] == "survey_sent"] == [f"survey-{tid}"]
    survey = await stack.http.get(f"/tickets/{tid}/survey", headers=stack.as_actor("sup-zhou"))
    assert survey.status_code == 200 and survey.json()["status"] == "sent", survey.text
    # The agent answers for the customer on the phone: a 2 opens the supervisor's call-back.
    r = await stack.http.post(
        f"/tickets/{tid}/survey/answer",
        json={"rating": 2, "comment": "took too long"},
        headers=stack.as_actor("agent-wang"),
    )
    assert r.status_code == 200, r.text
    follow_up = ticket_id_for_key(follow_up_key(tid))
    seen = await stack.until(follow_up, lambda t: t.get("ticket_type") == "satisfaction_follow_up", "sup-zhou")
    assert seen.get("ticket_type") == "satisfaction_follow_up", seen
    answered = (await stack.http.get(f"/tickets/{tid}/survey", headers=stack.as_actor("sup-zhou"))).json()
    assert (answered["status"], answered["rating"]) == ("answered", 2)
