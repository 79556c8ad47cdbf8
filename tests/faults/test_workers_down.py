"""Every worker down for longer than an SLA target: when one is back, what was due happens —
once, in order.

Cases (on a dev server of its own, ``tests/faults/server.py``; an SLA target of seconds, no
business calendar):

- ``test_breach_and_escalations_happen_once_each_when_a_worker_returns``: a ticket's response
  clock runs (4 s target: reminders at 50 % and 80 %, breach at 100 % to the supervisors,
  escalations at 150 % to the managers and 200 % to the directors); every worker stops
  before the breach and stays down past the last escalation (Temporal fires the pending timer
  and holds the workflow task meanwhile). A worker starts: the breach happens exactly once, then
  each escalation exactly once, in that order — one event each in the read model (which holds
  exactly the workflow's events), the milestones in increasing order with none twice, the
  clock breached and escalated to the directors, and one notification each in the outbox
  (by its business key) to the level's people of the region: its supervisors for the breach,
  its managers, then its directors (if it has any) for the escalations. Nothing fired while no
  worker ran; everything fired at once when one was back, none before its due time; a
  reminder whose timer fired during the outage is skipped (the breach overtook it).
"""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

import store.people
from models.db import Database
from models.notifications_tables import NotificationOutbox
from tests.faults.conftest import read_model_caught_up
from tests.faults.server import fault_stack, open_ticket, quiet, seconds_template, ticket_events
from tests.support import until_state

TARGET = timedelta(seconds=4)
LATE_S = 3.0  # once a worker is back, what was due fires within this
SLA = seconds_template(
    {
        "key": "fault_sla_workers_down",
        "name": "Fault suite: an SLA clock of seconds, default milestones",
        "start": "work",
        "nodes": [
            {
                "id": "work",
                "type": "task",
                "assignee": {"role": "engineer"},
                "sla": {"response": "PT4S"},
                "next": "end",
            },
            {"id": "end", "type": "end"},
        ],
    }
)


async def people_with(db: Database, role: str, region: str = "east") -> set[str]:
    """Who a ``role:<role>`` notification of the region reaches: its active holders there."""
    async with db.session() as session:
        people = await store.people.active_people(session)
    return {a.id for a in people if role in a.roles and ("*" in a.regions or region in a.regions)}


async def outbox(db: Database, ticket_id: str) -> list[NotificationOutbox]:
    async with db.session() as session:
        q = select(NotificationOutbox).where(NotificationOutbox.ticket_id == ticket_id)
        return list(await session.exec(q.order_by(col(NotificationOutbox.id))))


async def test_breach_and_escalations_happen_once_each_when_a_worker_returns(db: Database, database_url, tmp_path):
    async with fault_stack(database_url, tmp_path) as stack:
        handle, ticket = await open_ticket(stack.client, stack.settings.task_queue, SLA, "Nobody picks this up")
        s = await until_state(handle, lambda s: s.sla.clocks.get("response") and s.sla.clocks["response"].due, "clock")
        since = s.sla.clocks["response"].running_since
        assert since is not None
        await quiet(stack.client, [handle.id])

        await stack.stop_worker()  # every worker: the only one polling this server's task queue
        assert datetime.now(UTC) < since + TARGET, "the worker stopped after the breach was due"
        last_due = since + 2 * TARGET  # the director's escalation
        # Down past the last milestone (the outage itself: there is nothing to wait for).
        await asyncio.sleep(max(0.0, (last_due - datetime.now(UTC)).total_seconds()) + 0.5)
        before = {e.seq for e in await ticket_events(db, ticket.ticket_id)}  # a reminder, at most

        await stack.start_worker()
        back = datetime.now(UTC)
        s = await until_state(handle, lambda s: s.sla.clocks["response"].milestone == 5, "every milestone")
        clock = s.sla.clocks["response"]
        assert clock.breached_at is not None and s.sla.breached and s.sla.escalation == "director"
        await quiet(stack.client, [handle.id])
        events = await read_model_caught_up(db, handle)  # exactly the workflow's events, seq 1..n

        fired = [e for e in events if e.action.startswith("sla_")]
        breaches = [e for e in fired if e.action == "sla_breach"]
        escalations = [e for e in fired if e.action == "sla_escalation"]
        assert [e.data["escalated_to"] for e in breaches] == ["supervisor"], fired
        assert [e.data["escalated_to"] for e in escalations] == ["manager", "director"], fired
        assert breaches[0].seq < escalations[0].seq < escalations[1].seq
        shares = [e.data["share"] for e in fired]
        assert shares == sorted(set(shares)), f"a milestone fired twice or out of order: {shares}"
        assert shares[-3:] == [1.0, 1.5, 2.0]
        for e in fired:  # each once its time had come
            due = since + TARGET * e.data["share"]
            assert e.data["due"] == due.isoformat()
            assert e.at >= due, (e.action, e.data["share"], e.at, due)
        # A reminder whose timer fired while no worker ran is stale once the breach is due: skipped.
        stale = [e for e in fired if e.action == "sla_reminder" and e.seq not in before]
        assert not stale, f"a reminder fired after the breach was due: {[(e.data['share'], e.at) for e in stale]}"
        for e in [*breaches, *escalations]:  # nothing while no worker ran; at once when one was back
            assert e.seq not in before
            assert back - timedelta(seconds=1) <= e.at <= back + timedelta(seconds=LATE_S), (e.action, e.at, back)

        # One notification per milestone (its business key), to the level's people of the region.
        rows = [r for r in await outbox(db, ticket.ticket_id) if r.event in ("breach", "escalation")]
        keys = sorted({r.base_key for r in rows}, key=lambda k: min(r.id for r in rows if r.base_key == k))
        told = [
            ({r.event for r in rows if r.base_key == k}, {r.actor_id for r in rows if r.base_key == k}) for k in keys
        ]
        levels = [("breach", "supervisor"), ("escalation", "manager"), ("escalation", "director")]
        reached = [({event}, await people_with(db, role)) for event, role in levels]
        assert told == [(event, people) for event, people in reached if people], told
