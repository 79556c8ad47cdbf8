"""Notification keys come from business facts (ticket, the change they follow, event; the
outbox adds channel and recipient), not from the run id: an operator's reset — or any new run
re-telling the same facts — sends nothing twice."""

import asyncio
import uuid

from sqlmodel import col, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowHandle

from models.notifications_tables import NotificationOutbox


async def outbox(db, ticket_id: str) -> list[tuple[str, str, str]]:
    async with db.session() as s:
        rows = (await s.exec(select(NotificationOutbox).where(col(NotificationOutbox.ticket_id) == ticket_id))).all()
    return sorted((r.event, r.channel, r.recipient) for r in rows)


async def events(handle: WorkflowHandle, kind: EventType.ValueType) -> list:
    return [e async for e in handle.fetch_history_events() if e.event_type == kind]


async def test_a_reset_of_the_ticket_workflow_sends_no_notification_again(stack, db):
    r = await stack.create(
        ticket_type="equipment_repair",
        fields={"device_id": "CMP-4242", "fault": "noise", "site": {"lat": 31.23, "lon": 121.47}},
    )
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    t = await stack.until(tid, lambda t: any(e["action"] == "dispatched" for e in t["events"]))
    assert any(e["action"] == "dispatched" for e in t["events"]), t["events"]
    handle = stack.client.get_workflow_handle(f"ticket-{tid}")
    for _ in range(200):  # the notifier has sent what dispatch told
        if before := await outbox(db, tid):
            break
        await asyncio.sleep(0.05)
    assert ("assigned", "inbox") in {(e, c) for e, c, _ in before}, before

    # Reset to the workflow task that told the assignee: the new run keeps the dispatch decision
    # (it is before that task in the history), re-runs the task and tells the same person again.
    history = [e async for e in handle.fetch_history_events()]
    told_at = next(
        i
        for i, e in enumerate(history)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "notify.send"
    )
    task = next(
        e.event_id for e in reversed(history[:told_at]) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    reset = await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason="test: an operator resets the ticket to the task that told the assignee",
            workflow_task_finish_event_id=task,
            request_id=uuid.uuid4().hex,
        )
    )
    new_run = stack.client.get_workflow_handle(handle.id, run_id=reset.run_id)
    # The new run tells the same notification again ...
    for _ in range(300):
        told = [
            e
            for e in await events(new_run, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
            if e.activity_task_scheduled_event_attributes.activity_type.name == "notify.send"
        ]
        done = await events(new_run, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        if told and {e.activity_task_completed_event_attributes.scheduled_event_id for e in done} >= {
            e.event_id for e in told
        }:
            break
        await asyncio.sleep(0.1)
    assert told, "the reset run told nobody: the test would show nothing"
    # ... and the outbox holds each (event, channel, recipient) once, as before the reset.
    assert await outbox(db, tid) == before
