"""SLA clocks on the time-skipping server: business-hours deadlines, breach and escalation
notifications, and the clock paused while the ticket waits on the customer."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.registry import ACTIVITIES
from domain.calendar import add_business_time, freeze_holidays
from models import demo
from models import search_attributes as attrs
from models.calendar import BusinessCalendar
from models.notifications_tables import NotificationInbox
from models.tables import Ticket, TicketEventRow
from models.template import TemplateSpec, TemplateVersion
from models.ticket import (
    ActorRef,
    ChangePriorityInput,
    ClaimInput,
    CompleteInput,
    EventInput,
    Priority,
    StartInput,
    TicketInput,
)
from tests.support import preset
from workflows.registry import WORKFLOWS
from workflows.ticket import TicketWorkflow

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
SHANGHAI = freeze_holidays(
    BusinessCalendar.weekly("Asia/Shanghai", "09:00-18:00", "mon-fri", holiday_country="CN"), 2026, 2027
)


@pytest.fixture
async def start(tsenv, db):
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(tsenv.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):

        async def go(template: TemplateVersion, calendar: BusinessCalendar | None):
            inp = TicketInput(
                ticket_id=f"TS{uuid.uuid4().hex[:10].upper()}", ticket_type=template.key, region="east",
                priority=Priority.NORMAL, title="SLA", created_by=AGENT, created_at=datetime.now(UTC),
                template=template, calendar=calendar,
            )  # fmt: skip
            h = await tsenv.client.start_workflow(
                TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue
            )
            return h, await until(h, lambda s: s.active)

        yield go


async def until(h, check, tries: int = 200):
    for _ in range(tries):
        s = await h.query(TicketWorkflow.get_state)
        if check(s):
            return s
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_unanswered_ticket_breaches_in_business_hours_and_tells_the_supervisor(start, tsenv, db):
    h, s = await start(preset("general"), SHANGHAI)  # work task: respond within 2 working hours
    clock = s.sla.clocks["response"]
    expected = add_business_time(SHANGHAI, clock.running_since, timedelta(hours=2))
    await tsenv.sleep(timedelta(days=5))  # nobody claims it
    s = await until(h, lambda s: s.sla.escalation == "director")
    response = s.sla.clocks["response"]
    assert s.sla.breached and response.breached_at is not None and response.done_at is None
    assert abs(response.breached_at - expected) < timedelta(seconds=1)  # on the business-hours deadline
    desc = await h.describe()
    assert desc.typed_search_attributes.get(attrs.TICKET_SLA_BREACHED) == "true"
    async with db.session() as session:  # the read model lists it for managers too
        row = await session.get(Ticket, s.ticket_id)
        assert row.sla_breached and row.escalation in ("supervisor", "manager", "director")
    assert desc.typed_search_attributes.get(attrs.TICKET_ESCALATION) == "director"
    async with db.session() as session:
        told = (
            await session.exec(
                select(NotificationInbox).where(
                    col(NotificationInbox.ticket_id) == s.ticket_id, col(NotificationInbox.actor_id) == "sup-zhou"
                )
            )
        ).all()
    assert [n.event for n in told] == ["breach", "breach"]  # response (2 h), then resolution (8 h)
    # Escalation goes on to the manager (mgr-sun) after 150 %.
    async with db.session() as session:
        managers = (
            await session.exec(
                select(NotificationInbox.event).where(
                    col(NotificationInbox.ticket_id) == s.ticket_id, col(NotificationInbox.actor_id) == "mgr-sun"
                )
            )
        ).all()
    assert list(managers) == ["escalation", "escalation"]


async def test_a_timely_response_stops_the_response_clock(start, tsenv):
    h, _ = await start(preset("general"), SHANGHAI)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await tsenv.sleep(timedelta(days=5))
    s = await until(h, lambda s: s.sla.clocks["resolution"].breached_at is not None)
    response = s.sla.clocks["response"]
    assert response.done_at is not None and response.breached_at is None


def pausing(**wait: str) -> TemplateVersion:
    return TemplateVersion(
        key="pausing",
        version=1,
        spec=TemplateSpec.model_validate(
            {
                "key": "pausing",
                "name": "Needs the customer",
                "start": "ask",
                "sla": {"normal": {"resolution": "PT4H"}},
                "nodes": [
                    {"id": "ask", "type": "task", "assignee": {"role": "engineer"}, "next": "customer"},
                    {"id": "customer", "type": "wait", "signal": "customer_replied", "next": "fix", **wait},
                    {"id": "fix", "type": "task", "assignee": {"role": "engineer"}, "next": "done"},
                    {"id": "done", "type": "end"},
                ],
            }
        ),
    )


PAUSING = pausing()


async def test_time_waiting_on_the_customer_does_not_count(start, tsenv):
    h, _ = await start(PAUSING, None)  # 24x7
    for update, inp in [
        (TicketWorkflow.claim, ClaimInput(actor=ENG)),
        (TicketWorkflow.start, StartInput(actor=ENG)),
        (TicketWorkflow.complete, CompleteInput(actor=ENG)),
    ]:
        await h.execute_update(update, inp)
    s = await until(h, lambda s: s.active == ["customer"])
    await tsenv.sleep(timedelta(hours=10))  # the customer takes 10 hours: the clock is paused
    s = await h.query(TicketWorkflow.get_state)
    assert not s.sla.breached and s.sla.clocks["resolution"].running_since is None
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_replied", actor=AGENT))
    s = await until(h, lambda s: s.active == ["fix"])
    resumed = s.sla.clocks["resolution"].running_since
    assert resumed is not None
    await tsenv.sleep(timedelta(hours=3))
    assert not (await h.query(TicketWorkflow.get_state)).sla.breached  # 3 h after resuming: in time
    await tsenv.sleep(timedelta(hours=2))
    s = await until(h, lambda s: s.sla.breached)
    clock = s.sla.clocks["resolution"]
    # The breach comes 4 h minus the time used before the pause after resuming, not 10 h earlier.
    assert timedelta(hours=3, minutes=59) < clock.breached_at - resumed <= timedelta(hours=4)


async def test_a_repair_nobody_responds_to_in_two_working_hours_tells_the_supervisor(start, tsenv, db):
    """equipment_repair: dispatch gives the diagnosis to an engineer (the system, not a
    response); nobody starts it within 2 working hours → breach → the region's supervisor."""
    h, s = await start(preset("equipment_repair"), SHANGHAI)
    response = s.sla.clocks["response"]
    assert response.target == timedelta(hours=2)
    due = add_business_time(SHANGHAI, response.running_since, timedelta(hours=2))
    s = await until(h, lambda s: s.nodes["diagnose"].assignee is not None)
    engineer = s.nodes["diagnose"].assignee  # dispatched: the nearest qualified available one
    await tsenv.sleep(timedelta(days=4))
    s = await until(h, lambda s: s.sla.clocks["response"].milestone == 5)  # up to the director level
    assert abs(s.sla.clocks["response"].breached_at - due) < timedelta(seconds=1)
    # Escalation follows the engineer's management chain (supervisor → manager → general manager).
    managers = {a.id: a.manager_id for a in demo.ACTORS}
    chain = s.sla.clocks["response"].chain
    assert chain == [managers[engineer], managers[managers[engineer]], managers[managers[managers[engineer]]]]
    assert chain[:2] == ["sup-zhou", "mgr-sun"]
    for _ in range(100):
        async with db.session() as session:
            told = (
                await session.exec(
                    select(NotificationInbox.event).where(
                        col(NotificationInbox.ticket_id) == s.ticket_id, col(NotificationInbox.actor_id) == "sup-zhou"
                    )
                )
            ).all()
        if "breach" in told:
            break
        await asyncio.sleep(0.05)
    assert "breach" in told


async def test_changing_the_priority_recomputes_the_deadlines(start, tsenv, db):
    h, s = await start(preset("complaint"), None)  # 24x7; normal: respond in 4 h, resolve in 24 h
    assert s.sla.clocks["resolution"].target == timedelta(hours=24)
    await tsenv.sleep(timedelta(hours=1))
    boss = ActorRef(id="sup-zhou", roles=["supervisor"], regions=["east"])
    s = await h.execute_update(
        TicketWorkflow.change_priority, ChangePriorityInput(actor=boss, priority=Priority.URGENT, reason="press")
    )
    assert s.priority == Priority.URGENT
    assert (s.sla.clocks["response"].target, s.sla.clocks["resolution"].target) == (
        timedelta(minutes=30),
        timedelta(hours=4),
    )
    # The response was due 30 min after creation under the new target: it breaches at once.
    s = await until(h, lambda s: s.sla.clocks["response"].breached_at is not None)
    assert not s.sla.clocks["resolution"].breached_at
    await tsenv.sleep(timedelta(hours=3, minutes=5))
    s = await until(h, lambda s: s.sla.clocks["resolution"].breached_at is not None)
    created = s.created_at
    assert (
        timedelta(hours=3, minutes=59)
        < s.sla.clocks["resolution"].breached_at - created
        <= timedelta(hours=4, minutes=1)
    )
    cause = None
    try:
        await h.execute_update(
            TicketWorkflow.change_priority, ChangePriorityInput(actor=ENG, priority=Priority.LOW, reason="meh")
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
    assert cause is not None and cause.type == "NotAllowed"  # engineers do not re-prioritise
    with pytest.raises(WorkflowUpdateFailedError) as same:
        await h.execute_update(
            TicketWorkflow.change_priority, ChangePriorityInput(actor=boss, priority=Priority.URGENT, reason="again")
        )
    assert same.value.cause.type == "InvalidTransition"  # nothing to change
    async with db.session() as session:
        rows = (
            await session.exec(
                select(TicketEventRow)
                .where(col(TicketEventRow.ticket_id) == s.ticket_id)
                .order_by(col(TicketEventRow.seq))
            )
        ).all()
    response = [r.action for r in rows if r.action.startswith("sla_") and r.data.get("sla") == "response"]
    assert response[:1] == ["sla_breach"]  # its reminders were overtaken by the shorter target: not sent late


async def test_time_in_each_status_is_kept(start, tsenv):
    h, _ = await start(preset("general"), None)
    await tsenv.sleep(timedelta(hours=2))
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await tsenv.sleep(timedelta(minutes=30))
    s = await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    assert 2 * 3600 - 5 < s.time_in_status["new"] < 2 * 3600 + 60
    assert 30 * 60 - 5 < s.time_in_status["assigned"] < 30 * 60 + 60
    assert s.status_since is not None and "in_progress" not in s.time_in_status


async def test_an_event_sent_before_its_wait_opens_is_kept_for_it(start, tsenv):
    h, _ = await start(PAUSING, None)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_replied", actor=AGENT))  # early
    with pytest.raises(WorkflowUpdateFailedError) as undeclared:  # no wait takes it: not an event of this ticket
        await h.execute_update(TicketWorkflow.send_event, EventInput(name="something_else", actor=AGENT))
    assert undeclared.value.cause.type == "EventRefused"
    s = await until(h, lambda s: "customer_replied" in [e.name for e in s.unclaimed_events])
    await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG))
    s = await until(h, lambda s: s.active == ["fix"])  # the wait took the early event
    assert s.nodes["customer"].outcome == "customer_replied"
    assert s.unclaimed_events == []


async def test_an_early_event_older_than_the_waits_window_is_dropped(start, tsenv):
    h, _ = await start(pausing(early_window="PT1H"), None)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_replied", actor=AGENT))  # early
    await until(h, lambda s: "customer_replied" in [e.name for e in s.unclaimed_events])
    await tsenv.sleep(timedelta(hours=2))  # longer than the wait accepts
    await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG))
    s = await until(h, lambda s: s.active == ["customer"] and s.nodes["customer"].status == "waiting")
    assert s.unclaimed_events == []  # dropped, not taken: the wait waits for a new reply
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_replied", actor=AGENT))
    s = await until(h, lambda s: s.active == ["fix"])
    assert s.nodes["customer"].outcome == "customer_replied"


TWO_STEPS = TemplateVersion(
    key="two_steps",
    version=1,
    spec=TemplateSpec.model_validate(
        {
            "key": "two_steps",
            "name": "Triage, then a visit with its own SLA",
            "start": "triage",
            "sla": {"normal": {"resolution": "PT24H"}},
            "nodes": [
                {"id": "triage", "type": "task", "assignee": {"role": "engineer"}, "next": "visit"},
                {
                    "id": "visit",
                    "type": "task",
                    "assignee": {"role": "engineer"},
                    "next": "done",
                    "sla": {"response": "PT1H", "resolution": "PT3H"},
                },  # fmt: skip
                {"id": "done", "type": "end"},
            ],
        }
    ),
)


async def test_a_task_with_its_own_sla_runs_its_own_clocks(start, tsenv):
    h, s = await start(TWO_STEPS, None)  # 24x7
    assert set(s.sla.clocks) == {"resolution"}  # the ticket's
    for update, inp in [
        (TicketWorkflow.claim, ClaimInput(actor=ENG, node="triage")),
        (TicketWorkflow.start, StartInput(actor=ENG, node="triage")),
        (TicketWorkflow.complete, CompleteInput(actor=ENG, node="triage")),
    ]:
        await h.execute_update(update, inp)
    s = await until(h, lambda s: "visit.response" in s.sla.clocks)
    assert s.sla.clocks["visit.resolution"].target == timedelta(hours=3)
    await tsenv.sleep(timedelta(hours=1, minutes=5))  # nobody takes the visit within its hour
    s = await until(h, lambda s: s.sla.clocks["visit.response"].breached_at is not None)
    assert s.sla.breached and s.sla.clocks["resolution"].breached_at is None
    s = await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG, node="visit"))
    assert s.sla.clocks["visit.response"].done_at is not None and s.sla.clocks["visit.resolution"].done_at is None
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG, node="visit"))
    s = await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG, node="visit"))
    assert s.sla.clocks["visit.resolution"].done_at is not None
    assert s.sla.clocks["visit.resolution"].breached_at is None and s.status.value == "resolved"


async def test_reminder_and_escalation_shares_come_from_the_template(start, tsenv, db):
    body = TWO_STEPS.spec.model_dump(mode="json") | {
        "sla": {"normal": {"response": "PT4H"}},
        "sla_policy": {"reminders": [0.25], "escalations": [1.25]},
    }
    spec = TemplateSpec.model_validate(body)
    tmpl = TemplateVersion(key="policy", version=1, spec=spec)
    h, _ = await start(tmpl, None)  # 24x7: remind at 1 h, breach at 4 h, manager at 5 h, no director
    await tsenv.sleep(timedelta(hours=6))
    s = await until(h, lambda s: s.sla.clocks["response"].milestone == 3)
    async with db.session() as session:
        rows = (
            await session.exec(
                select(TicketEventRow)
                .where(col(TicketEventRow.ticket_id) == s.ticket_id)
                .order_by(col(TicketEventRow.seq))
            )
        ).all()
    fired = [(r.action, r.data["share"]) for r in rows if r.action.startswith("sla_")]
    assert fired == [("sla_reminder", 0.25), ("sla_breach", 1.0), ("sla_escalation", 1.25)]
    assert s.sla.escalation == "manager"
    with pytest.raises(ValueError, match="increasing"):
        TemplateSpec.model_validate({**body, "sla_policy": {"reminders": [0.8, 0.5]}})


async def test_clocks_run_from_intake_not_from_the_first_workflow_task(tsenv, db):
    """A ticket taken just before an outage (Temporal server or every worker down) is picked up
    by a workflow task minutes later: its clocks still count from intake (``created_at``)."""
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    taken = datetime.now(UTC) - timedelta(minutes=40)  # the API took it 40 minutes before the first task
    inp = TicketInput(
        ticket_id=f"TS{uuid.uuid4().hex[:10].upper()}", ticket_type="general", region="east",
        priority=Priority.NORMAL, title="SLA from intake", created_by=AGENT, created_at=taken,
        template=preset("general"), calendar=None,
    )  # fmt: skip
    async with Worker(tsenv.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        h = await tsenv.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)
        s = await until(h, lambda s: s.active)
    clock = s.sla.clocks["response"]
    assert clock.running_since == taken
    first = preset("general").spec.sla_policy.reminders[0]  # the next milestone: the first reminder
    assert clock.due == taken + clock.target * first  # 24x7: intake + its share of the target, outage or not
