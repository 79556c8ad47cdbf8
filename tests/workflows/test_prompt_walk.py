"""Release 2026-12-06's prompt walk: the walk's own records (by the system: a task opened, a
dispatch, "resolved"…) no longer wait each for a projection round of their own. They go in the
projector's next batch, so a ticket writes its read model in fewer, larger activities — while
an action's reply still waits until the read model holds what it answers with."""

import json

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle


async def projection_batches(handle: WorkflowHandle) -> list[list[str]]:
    """The actions each ``projection.record_ticket_changes`` activity carried, in order."""
    batches = []
    async for e in handle.fetch_history_events():
        if e.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        a = e.activity_task_scheduled_event_attributes
        if a.activity_type.name == "projection.record_ticket_changes":
            change = json.loads(a.input.payloads[0].data)
            batches.append([ev["action"] for ev in change["events"]])
    return batches


async def test_the_walks_own_records_share_a_projection_round(stack):
    r = await stack.create(title="Printer jams on every page")
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: "work" in t["active"], actor="sup-zhou")
    handle = stack.client.get_workflow_handle(f"ticket-{tid}")
    # Before the release the walk waited for "created" to be written before it opened the task:
    # [["created"], ["task_opened"]]. Now both go in the first round.
    assert (await projection_batches(handle))[0] == ["created", "task_opened"]

    # An action's reply still comes once the read model holds it: a list read right after sees it.
    assert (await stack.act(tid, "claim")).status_code == 200
    listed = await stack.http.get("/tickets", params={"assignee": "eng-li"}, headers=stack.as_actor("eng-li"))
    assert tid in {t["id"] for t in listed.json()["items"]}
    assert (await stack.act(tid, "start")).status_code == 200
    resolved = await stack.act(tid, "resolve", resolution="rollers cleaned")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    # The resolution and the walk's "resolved" went in one round (before: two).
    assert ["resolve", "resolved"] in await projection_batches(handle)
    events = (await stack.http.get(f"/tickets/{tid}/events", headers=stack.as_actor("eng-li"))).json()["items"]
    assert [e["action"] for e in events][-2:] == ["resolve", "resolved"]  # in the read model when it replied
