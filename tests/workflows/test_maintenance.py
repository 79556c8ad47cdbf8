"""Temporal Schedules opening tickets, on the dev server (the time-skipping test server does not
implement schedules: CreateSchedule is "unimplemented" there).

- A maintenance plan every N days: a backfill over a past range runs its firings as Temporal
  would have (their ``TemporalScheduledStartTime`` set), one ticket per firing, N days apart;
  the same range backfilled again — each firing delivered a second time, new workflow runs
  under the same ids — opens no ticket more. So does a workflow started twice by hand.
- ``schedules.follow_up``: one schedule per (ticket, follow-up), one action at the due moment;
  a repeat changes nothing; a moment already past fires at once, and firing it again opens no
  second ticket; one deleted stays deleted; what can never open is refused for good.
"""

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleHandle,
    ScheduleOverlapPolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

import store.schedules
from activities import schedules as scheduling
from activities.intake import INVALID_FIELDS
from domain.ids import ticket_id_for_key
from models.db import Database
from models.intake import OpenedTicket
from models.schedule_tables import MaintenanceSchedule
from models.schedules import FollowUp, FollowUpInput, FollowUpScheduled, ScheduledTicket
from models.tables import Ticket
from tests.conftest import Stack
from workflows.maintenance import MaintenanceWorkflow

pytestmark = pytest.mark.asyncio
EVERY = timedelta(days=3)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def tickets_with_key(db: Database, pattern: str) -> list[Ticket]:
    async with db.session() as s:
        q = select(Ticket).where(col(Ticket.idempotency_key).like(pattern)).order_by(col(Ticket.idempotency_key))
        return list((await s.exec(q)).all())


async def plan(stack: Stack, db: Database, start: datetime) -> tuple[MaintenanceSchedule, ScheduleHandle]:
    now = datetime.now(UTC)
    row = MaintenanceSchedule(
        id=f"mnt-test-{uuid.uuid4().hex[:10]}",
        kind="maintenance",
        region="east",
        ticket_type="equipment_repair",
        title="Quarterly compressor service",
        asset_id="ast_demo0001",
        customer_id="cus_demo0001",
        contract="SC-DEMO-0001",
        every_s=int(EVERY.total_seconds()),
        start_at=start,
        end_at=now + timedelta(days=365),
        ticket={"fields": {"fault": "other"}, "description": "Change the oil and the filters"},
        created_by="sup-zhou",
        created_at=now,
        updated_at=now,
    )
    async with db.session() as s:
        store.schedules.add(s, row)
        await s.commit()
    assert await scheduling.create_schedule(stack.client, row, stack.settings.task_queue)
    return row, stack.client.get_schedule_handle(row.id)


async def runs_done(stack: Stack, handle: ScheduleHandle, count: int) -> list[OpenedTicket]:
    """Wait until the schedule has started ``count`` runs in all; the results of every run."""
    desc = await eventually(lambda: _described_with(handle, count))
    assert desc is not None, f"the schedule did not run {count} times"
    results = []
    for action in desc.info.recent_actions:
        assert isinstance(action.action, ScheduleActionExecutionStartWorkflow)
        run = stack.client.get_workflow_handle(
            action.action.workflow_id, run_id=action.action.first_execution_run_id, result_type=OpenedTicket
        )
        results.append(await run.result())
    return results


async def _described_with(handle: ScheduleHandle, count: int) -> Any:
    desc = await handle.describe()
    return desc if desc.info.num_actions >= count else None


async def test_a_plan_opens_one_ticket_per_firing_every_n_days(stack: Stack, db: Database):
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    row, handle = await plan(stack, db, start)
    try:
        desc = await handle.describe()
        assert desc.info.next_action_times[0] > datetime.now(UTC)
        assert (desc.info.next_action_times[1] - desc.info.next_action_times[0]) == EVERY
        assert (desc.info.next_action_times[0] - start) % EVERY == timedelta(0)  # aligned on start_at
        assert desc.schedule.state.note and "every 3 days" in desc.schedule.state.note

        window = ScheduleBackfill(
            start_at=start - timedelta(seconds=1),
            end_at=start + 2 * EVERY + timedelta(hours=1),
            overlap=ScheduleOverlapPolicy.ALLOW_ALL,
        )
        await handle.backfill(window)
        first = await runs_done(stack, handle, 3)
        assert [r.new for r in first] == [True, True, True]
        opened = await tickets_with_key(db, f"schedule:{row.id}:%")
        fired_at = [start + n * EVERY for n in range(3)]
        assert [t.idempotency_key for t in opened] == [f"schedule:{row.id}:{at:%Y-%m-%dT%H:%M:%SZ}" for at in fired_at]
        assert {t.id for t in opened} == {r.ticket_id for r in first}
        for t in opened:
            assert (t.ticket_type, t.region, t.asset_id, t.customer_id) == (
                "equipment_repair",
                "east",
                "ast_demo0001",
                "cus_demo0001",
            )
            assert t.created_by == "sup-zhou" and t.channel == "system"
            assert t.snapshot["fields"]["device_id"] == "CMP-000001"  # from the asset

        # The same firings delivered again: new runs, the same scheduled times, no new ticket.
        await handle.backfill(window)
        again = await runs_done(stack, handle, 6)
        assert [r.new for r in again[3:]] == [False, False, False]
        assert {r.ticket_id for r in again[3:]} == {r.ticket_id for r in first}
        assert len(await tickets_with_key(db, f"schedule:{row.id}:%")) == 3
    finally:
        await handle.delete()


async def test_a_workflow_started_twice_by_hand_opens_one_ticket(stack: Stack, db: Database):
    schedule_id = f"mnt-hand-{uuid.uuid4().hex[:8]}"
    payload = ScheduledTicket(schedule_id=schedule_id, ticket_type="general", region="east", title="By hand")
    workflow_id = f"{schedule_id}-run"
    results = []
    for _ in range(2):
        results.append(
            await stack.client.execute_workflow(
                MaintenanceWorkflow.run, payload, id=workflow_id, task_queue=stack.settings.task_queue
            )
        )
    key = f"schedule:{schedule_id}:{workflow_id}"
    assert results == [
        OpenedTicket(ticket_id=ticket_id_for_key(key), new=True),
        OpenedTicket(ticket_id=ticket_id_for_key(key), new=False),
    ]
    assert len(await tickets_with_key(db, key)) == 1


# --- follow-ups ---


def activity_env(stack: Stack) -> ActivityEnvironment:
    env = ActivityEnvironment(client=stack.client)
    env.info = dataclasses.replace(env.info, task_queue=stack.settings.task_queue)
    return env


CALL_BACK = FollowUp(
    name="call_back", after="close", delay=timedelta(days=3), ticket_type="general", title="Call back: all good?"
)


async def follow_up(stack: Stack, ticket_id: str, at: datetime, spec: FollowUp = CALL_BACK) -> FollowUpScheduled:
    return await activity_env(stack).run(
        scheduling.follow_up, FollowUpInput(ticket_id=ticket_id, follow_up=spec, at=at)
    )


async def a_ticket(stack: Stack, **body: Any) -> str:
    created = await stack.create(**body)
    assert created.status_code == 201, created.text
    return created.json()["ticket_id"]


async def test_a_follow_up_is_one_schedule_with_one_action(stack: Stack, db: Database):
    ticket_id = await a_ticket(stack, asset={"id": "ast_demo0001"})
    closed_at = datetime.now(UTC).replace(microsecond=0)
    scheduled = await follow_up(stack, ticket_id, closed_at)
    schedule_id = f"follow-up-{ticket_id}-call_back"
    assert scheduled == FollowUpScheduled(schedule_id=schedule_id, due_at=closed_at + timedelta(days=3), new=True)
    handle = stack.client.get_schedule_handle(schedule_id)
    try:
        desc = await handle.describe()
        assert desc.info.next_action_times == [closed_at + timedelta(days=3)]
        assert desc.schedule.state.limited_actions and desc.schedule.state.remaining_actions == 1
        assert await desc.memo() == {
            "kind": "follow_up",
            "region": "east",
            "asset_id": "ast_demo0001",
            "source_ticket": ticket_id,
            "created_by": "system",
        }
        assert await follow_up(stack, ticket_id, closed_at) == scheduled.model_copy(update={"new": False})
        async with db.session() as s:
            row = await store.schedules.get(s, schedule_id)
            assert row is not None and row.kind == "follow_up" and row.due_at == scheduled.due_at
            assert row.customer_id == "cus_demo0001" and row.region == "east"
            rows = (await s.exec(select(func.count()).where(col(MaintenanceSchedule.source_ticket) == ticket_id))).one()
            assert rows == 1
    finally:
        await handle.delete()


async def test_a_follow_up_already_due_fires_now_and_once(stack: Stack, db: Database):
    ticket_id = await a_ticket(stack)
    scheduled = await follow_up(stack, ticket_id, datetime.now(UTC) - timedelta(days=10))
    assert scheduled.new and scheduled.due_at < datetime.now(UTC)
    handle = stack.client.get_schedule_handle(scheduled.schedule_id)
    key = f"follow-up:{ticket_id}:call_back"
    try:
        first = await runs_done(stack, handle, 1)
        assert first == [OpenedTicket(ticket_id=ticket_id_for_key(key), new=True)]
        (opened,) = await tickets_with_key(db, key)
        assert opened.title == "Call back: all good?" and opened.external_ref == ticket_id
        assert opened.created_by == "system"
        await handle.trigger()  # fired again (by hand, from the UI): the same follow-up ticket
        again = await runs_done(stack, handle, 2)
        assert again[1] == OpenedTicket(ticket_id=opened.id, new=False)
        assert len(await tickets_with_key(db, key)) == 1
    finally:
        await handle.delete()


async def test_a_deleted_follow_up_stays_deleted(stack: Stack, db: Database):
    ticket_id = await a_ticket(stack)
    at = datetime.now(UTC)
    scheduled = await follow_up(stack, ticket_id, at)
    deleted = await stack.http.delete(f"/schedules/{scheduled.schedule_id}", headers=stack.as_actor("sup-zhou"))
    assert deleted.status_code == 204
    assert (await follow_up(stack, ticket_id, at)).new is False
    with pytest.raises(RPCError):
        await stack.client.get_schedule_handle(scheduled.schedule_id).describe()


async def test_a_follow_up_that_can_never_open_is_refused(stack: Stack):
    with pytest.raises(ApplicationError) as unknown:
        await follow_up(stack, "TNOSUCHTICKET", datetime.now(UTC))
    assert unknown.value.type == scheduling.UNKNOWN_TICKET and unknown.value.non_retryable
    ticket_id = await a_ticket(stack)
    with pytest.raises(ApplicationError) as no_type:
        await follow_up(stack, ticket_id, datetime.now(UTC), CALL_BACK.model_copy(update={"ticket_type": "nope"}))
    assert no_type.value.type == scheduling.UNKNOWN_TICKET_TYPE and no_type.value.non_retryable
    # equipment_repair needs a device id and a fault: a ticket without an asset cannot fill them.
    with pytest.raises(ApplicationError) as fields:
        await follow_up(
            stack, ticket_id, datetime.now(UTC), CALL_BACK.model_copy(update={"ticket_type": "equipment_repair"})
        )
    assert fields.value.type == INVALID_FIELDS and fields.value.non_retryable
    with pytest.raises(RPCError):
        await stack.client.get_schedule_handle(f"follow-up-{ticket_id}-call_back").describe()


async def test_a_follow_up_delay_is_bounded():
    with pytest.raises(ValueError):
        FollowUp(name="x", delay=timedelta(0), ticket_type="general", title="t")
    with pytest.raises(ValueError):
        FollowUp(name="x", delay=timedelta(days=400), ticket_type="general", title="t")
    assert FollowUp.model_validate({"name": "x", "delay": "P3D", "ticket_type": "general", "title": "t"}).delay == (
        timedelta(days=3)
    )
