"""Parent and child tickets on the time-skipping server (docs/linked-tickets.md).

A ``spawn`` node opens child tickets (child workflows ``ticket-<id>``) and waits for all of them
or for the first; the parent's cancellation reaches the children still open when the template
says ``on_cancel: cancel`` and leaves them running with ``leave``; a parent that continued as
new while waiting finds its children again. The real activities run against the ``db``
fixture's database (children.prepare writes each child's intake row, the projection keeps it,
children.status reads it, children.cancel signs a ``cancel`` as the system). Every child is
finished through signed updates, as the API sends them.
"""

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities import children
from activities.registry import ACTIVITIES
from api.services import templates
from domain.ids import ticket_id_for_key
from domain.spawn_validation import spawn_problems
from models import demo
from models.children import PrepareChild, child_key
from models.db import Database
from models.settings import Settings
from models.tables import Ticket, TicketEventRow
from models.template import (
    AssigneeRule,
    ChildSpec,
    EndNode,
    FieldType,
    FormField,
    SpawnNode,
    TaskNode,
    TemplateSpec,
    TemplateVersion,
)
from models.ticket import (
    ActorRef,
    CancelInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    CompleteInput,
    EventInput,
    Priority,
    StartInput,
    TicketInput,
    TicketResult,
    TicketState,
    TicketStatus,
)
from tests.conftest import SIGNING_KEY, SIGNING_KEY_ID
from tests.support import preset, until_state
from workflows.nodes import spawn
from workflows.ticket import TicketWorkflow

PEOPLE = {a.id: ActorRef(id=a.id, roles=list(a.roles), regions=list(a.regions)) for a in demo.ACTORS}
AGENT, SUPERVISOR, GATEWAY = PEOPLE["agent-wang"], PEOPLE["sup-zhou"], PEOPLE["gateway-qr"]
S = TicketStatus
SITE_A = {"lat": 31.2304, "lon": 121.4737, "address": "88 Century Ave, Pudong"}
SITE_B = {"lat": 31.1955, "lon": 121.4365, "address": "1 Xujiahui Rd"}

# A one-step child (an agent does it) and parents of it, built per test.
STEP = TemplateSpec(
    key="spawn_test_step",
    name="One step",
    fields=[FormField(name="note", type=FieldType.TEXT, required=True)],
    start="work",
    nodes=[TaskNode(id="work", assignee=AssigneeRule(role="agent"), next="done"), EndNode(id="done")],
)


def parent(wait: str = "all", on_cancel: str = "cancel", notes: tuple[str, ...] = ("order_no", "order_no + '/2'")):
    spec = TemplateSpec(
        key="spawn_test_parent",
        name="Parent",
        fields=[FormField(name="order_no", type=FieldType.TEXT)],
        start="fan_out",
        nodes=[
            SpawnNode(
                id="fan_out",
                children=[
                    ChildSpec(ticket_type=STEP.key, title=f"{{title}} part {i + 1}", fields={"note": note})
                    for i, note in enumerate(notes)
                ],
                wait=wait,  # type: ignore[arg-type]
                on_cancel=on_cancel,  # type: ignore[arg-type]
                next="check",
            ),
            TaskNode(id="check", assignee=AssigneeRule(role="supervisor"), next="done"),
            EndNode(id="done"),
        ],
    )
    return TemplateVersion(key=spec.key, version=1, spec=spec)


class Env:
    def __init__(self, ts: WorkflowEnvironment, queue: str, db: Database) -> None:
        self.ts, self.queue, self.db = ts, queue, db

    async def start(
        self, template: TemplateVersion, history_limit: int | None = None, queue: str | None = None, **fields: Any
    ):
        ticket_id = f"SP{uuid.uuid4().hex[:12].upper()}"
        inp = TicketInput(
            ticket_id=ticket_id,
            ticket_type=template.key,
            region="east",
            priority=Priority.HIGH,
            title=f"Project {ticket_id}",
            created_by=AGENT,
            created_at=datetime.now(UTC),  # SLA clocks run from intake
            template=template,
            fields=fields,
            history_limit=history_limit,
        )
        return await self.ts.client.start_workflow(
            TicketWorkflow.run, inp, id=f"ticket-{ticket_id}", task_queue=queue or self.queue
        )

    def child(self, child_id: str) -> WorkflowHandle:
        return self.ts.client.get_workflow_handle(f"ticket-{child_id}", result_type=TicketResult)


@pytest.fixture
async def env(tsenv: WorkflowEnvironment, db: Database):
    async with db.session() as session:  # the one-step child type, published once per database
        await templates.publish(session, PEOPLE["admin"], STEP)
    children.configure(Settings(action_signing_key=SIGNING_KEY, action_signing_key_id=SIGNING_KEY_ID))
    queue = f"tq-spawn-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(tsenv.client, task_queue=queue, workflows=[TicketWorkflow], activities=ACTIVITIES):
            yield Env(tsenv, queue, db)
    finally:
        children.configure(None)


async def until(h: WorkflowHandle, check: Callable[[TicketState], Any], what: str, timeout: float = 20) -> TicketState:
    return await until_state(h, check, what, timeout)


async def ended(h: WorkflowHandle, timeout: float = 20) -> TicketState:
    """The ticket's final state once its workflow has completed. Polled, not ``h.result()``: a
    result wait lets the time-skipping server jump ahead, and with idle children about it would
    jump to their (default, ten-year) execution timeout."""
    deadline = time.monotonic() + timeout
    while (await h.describe()).status == WorkflowExecutionStatus.RUNNING:
        if time.monotonic() > deadline:
            pytest.fail(f"{h.id} did not complete")
        await asyncio.sleep(0.05)
    return await h.query(TicketWorkflow.get_state)


async def opened(h: WorkflowHandle, n: int) -> TicketState:
    """Until the parent has opened ``n`` children and waits for them."""

    def waiting(s: TicketState) -> bool:
        return len(s.children) == n and any(s.nodes[a].type == "spawn" for a in s.active)

    return await until(h, waiting, f"{n} children opened")


async def finish_step(env: Env, child_id: str) -> TicketState:
    """An agent does the one step of a ``spawn_test_step`` child and closes it."""
    h = env.child(child_id)
    await until(h, lambda s: "work" in s.active, "the child's task")
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=AGENT))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=AGENT))
    s = await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=AGENT))
    assert s.status == S.RESOLVED
    s = await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    assert s.status == S.CLOSED
    return await ended(h)


async def finish_installation(env: Env, child_id: str) -> TicketState:
    """An installation child: scheduled, installed by the first engineer offered it, accepted by
    the customer (through the channel gateway), closed."""
    h = env.child(child_id)
    await until(h, lambda s: "schedule" in s.active, "schedule")
    for update, inp in [
        (TicketWorkflow.claim, ClaimInput(actor=AGENT)),
        (TicketWorkflow.start, StartInput(actor=AGENT)),
        (TicketWorkflow.complete, CompleteInput(actor=AGENT, fields={"appointment": "2026-11-26T14:00:00+08:00"})),
    ]:
        await h.execute_update(update, inp)
    s = await until(h, lambda s: bool(s.nodes.get("install") and s.nodes["install"].offers), "grab pool")
    engineer = PEOPLE[s.nodes["install"].offers[0]]
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=engineer, node="install"))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=engineer, node="install"))
    await h.execute_update(
        TicketWorkflow.complete, CompleteInput(actor=engineer, node="install", fields={"serial_no": "HP9-1"})
    )
    await h.execute_update(TicketWorkflow.send_event, EventInput(actor=GATEWAY, name="customer_accepted"))
    await until(h, lambda s: s.status == S.RESOLVED, "accepted")
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    return await ended(h)


async def events(env: Env, ticket_id: str) -> list[TicketEventRow]:
    async with env.db.session() as session:
        q = select(TicketEventRow).where(TicketEventRow.ticket_id == ticket_id).order_by(col(TicketEventRow.seq))
        return list((await session.exec(q)).all())


# --- waiting for all, for any ---


async def test_a_project_opens_an_installation_per_site_and_waits_for_both(env):
    h = await env.start(preset("installation_project"), order_no="ERP-7001", product="Heat pump HP-9",
                        site_a=SITE_A, site_b=SITE_B)  # fmt: skip
    s = await opened(h, 2)
    parent_id = s.ticket_id
    ids = list(s.children)
    assert ids == [ticket_id_for_key(child_key(parent_id, "install_sites", i, 1)) for i in range(2)]
    assert all(c.ticket_type == "installation" and c.status == S.NEW and c.cancel_with_parent
               for c in s.children.values())  # fmt: skip

    first = await env.child(ids[0]).query(TicketWorkflow.get_state)
    assert (first.parent_id, first.created_by, first.channel, first.region) == (parent_id, "system", "system", "east")
    assert first.title == f"Project {parent_id} (first site)" and first.priority == Priority.HIGH
    assert first.fields == {"order_no": "ERP-7001", "product": "Heat pump HP-9", "address": SITE_A}
    second = await env.child(ids[1]).query(TicketWorkflow.get_state)
    assert second.fields["address"] == SITE_B
    async with env.db.session() as session:  # each child's intake row, kept by its projection
        rows = [await session.get(Ticket, i) for i in ids]
    assert all(r is not None and r.idempotency_key == child_key(parent_id, "install_sites", n, 1)
               for n, r in enumerate(rows))  # fmt: skip

    await finish_installation(env, ids[0])
    s = await until(h, lambda s: s.children[ids[0]].status == S.CLOSED, "the first child heard of")
    assert s.active == ["install_sites"]  # still waiting for the second site
    await finish_installation(env, ids[1])
    s = await until(h, lambda s: "handover" in s.active, "the handover")
    assert s.nodes["install_sites"].outcome == "all_finished"
    assert {c: v.status for c, v in s.children.items()} == {ids[0]: S.CLOSED, ids[1]: S.CLOSED}
    actions = [(e.action, e.data.get("child")) for e in await events(env, parent_id)]
    assert [a for a in actions if a[0] in ("child_opened", "child_finished")] == [
        ("child_opened", ids[0]),
        ("child_opened", ids[1]),
        ("child_finished", ids[0]),
        ("child_finished", ids[1]),
    ]
    for update, inp in [
        (TicketWorkflow.claim, ClaimInput(actor=SUPERVISOR)),
        (TicketWorkflow.start, StartInput(actor=SUPERVISOR)),
        (TicketWorkflow.complete, CompleteInput(actor=SUPERVISOR, fields={"handover_notes": "both sites running"})),
        (TicketWorkflow.close, CloseInput(actor=AGENT)),
    ]:
        s = await h.execute_update(update, inp)
    final = await ended(h)
    assert (final.status, final.path) == (S.CLOSED, ["install_sites", "handover", "done"])


async def test_wait_any_goes_on_at_the_first_child_and_the_others_keep_running(env):
    h = await env.start(parent(wait="any", notes=("order_no", "order_no + '/2'", "title")), order_no="PO-1")
    s = await opened(h, 3)
    ids = list(s.children)
    notes = [(await env.child(i).query(TicketWorkflow.get_state)).fields["note"] for i in ids]
    assert notes == ["PO-1", "PO-1/2", f"Project {s.ticket_id}"]  # expressions over the parent

    await finish_step(env, ids[1])
    s = await until(h, lambda s: "check" in s.active, "the parent goes on")
    assert s.nodes["fan_out"].outcome == "first_finished"
    assert [s.children[i].status for i in ids] == [S.NEW, S.CLOSED, S.NEW]
    for other in (ids[0], ids[2]):  # still open, and still doable
        assert (await env.child(other).query(TicketWorkflow.get_state)).active == ["work"]
    assert (await finish_step(env, ids[0])).status == S.CLOSED


async def test_a_child_the_parent_cannot_open_is_recorded_and_the_others_go_on(env):
    # The second child's note would be a number: the child's template wants text.
    h = await env.start(parent(notes=("order_no", "size(order_no)")), order_no="PO-2")
    s = await until(h, lambda s: "fan_out" in s.active and s.nodes["fan_out"].result.get("refused"), "the refusal")
    assert len(s.children) == 1
    refused = [e for e in await events(env, s.ticket_id) if e.action == "child_refused"]
    assert len(refused) == 1 and refused[0].data["error"] == "Children:InvalidFields"
    assert refused[0].data["problems"] == [{"field": "note", "msg": "must be a string", "type": "invalid_value"}]
    assert s.nodes["fan_out"].result["refused"] == [1]
    await finish_step(env, next(iter(s.children)))
    s = await until(h, lambda s: "check" in s.active, "the parent goes on with the child it opened")
    assert len(s.children) == 1


# --- cancellation ---


async def test_cancelling_the_parent_cancels_its_open_children(env):
    h = await env.start(parent(), order_no="PO-3")
    s = await opened(h, 2)
    done, still_open = list(s.children)
    await finish_step(env, done)
    await until(h, lambda s: s.children[done].status == S.CLOSED, "the first child heard of")

    await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=AGENT, reason="customer withdrew"))
    final = await ended(h)
    assert final.status == S.CANCELLED
    child = await ended(env.child(still_open))  # the open child was cancelled…
    assert child.status == S.CANCELLED
    cancel = [e for e in await events(env, still_open) if e.action == "cancel"]
    assert [(e.actor_id, e.data["reason"]) for e in cancel] == [("system", f"parent {final.ticket_id} cancelled")]
    assert (await env.child(done).query(TicketWorkflow.get_state)).status == S.CLOSED  # …the closed one kept
    assert {c: v.status for c, v in final.children.items()} == {done: S.CLOSED, still_open: S.CANCELLED}
    recorded = [e for e in await events(env, final.ticket_id) if e.action == "children_cancelled"]
    assert [e.data for e in recorded] == [{"children": [still_open], "ended": {}}]


async def test_a_cancel_finds_the_children_that_closed_unheard(env):
    """wait: any — the parent went on at the first child; another closed afterwards (the parent
    no longer watched it). Cancelling the parent cancels the one still open and reports the other
    as ended, from the read model."""
    h = await env.start(parent(wait="any", notes=("order_no", "order_no", "order_no")), order_no="PO-6")
    s = await opened(h, 3)
    first, unheard, still_open = list(s.children)
    await finish_step(env, first)
    await until(h, lambda s: "check" in s.active, "the parent goes on")
    await finish_step(env, unheard)
    assert (await h.query(TicketWorkflow.get_state)).children[unheard].status == S.NEW  # as last heard

    await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=SUPERVISOR, reason="project dropped"))
    final = await ended(h)
    assert (await ended(env.child(still_open))).status == S.CANCELLED
    assert [final.children[i].status for i in (first, unheard, still_open)] == [S.CLOSED, S.CLOSED, S.CANCELLED]
    recorded = [e.data for e in await events(env, final.ticket_id) if e.action == "children_cancelled"]
    assert recorded == [{"children": [still_open], "ended": {unheard: "closed"}}]


async def test_with_leave_the_children_outlive_a_cancelled_parent(env):
    h = await env.start(parent(on_cancel="leave"), order_no="PO-4")
    s = await opened(h, 2)
    assert not any(c.cancel_with_parent for c in s.children.values())
    await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=AGENT, reason="replanned"))
    final = await ended(h)
    assert final.status == S.CANCELLED
    assert not [e for e in await events(env, final.ticket_id) if e.action.startswith("children_cancel")]
    for child_id in final.children:  # still open and workable: nobody cancelled them
        assert (await env.child(child_id).query(TicketWorkflow.get_state)).active == ["work"]
        assert (await finish_step(env, child_id)).status == S.CLOSED


# --- continue-as-new ---


async def test_a_parent_that_continued_as_new_finds_its_children_again(env, monkeypatch):
    """The next run has no handles: it asks ``children.status`` at once and then on a durable
    timer. Time-skipping cannot be used here: once a child completes after its parent's run
    continued as new, the test server no longer skips time (its delivery to the closed run
    hangs). So this parent runs on an unsandboxed worker whose first poll comes after a second
    (``POLL_FIRST``, patched), in real time."""
    monkeypatch.setattr(spawn, "POLL_FIRST", timedelta(seconds=1))
    queue = f"tq-spawn-can-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        env.ts.client,
        task_queue=queue,
        workflows=[TicketWorkflow],
        activities=ACTIVITIES,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        h = await env.start(parent(), history_limit=90, queue=queue, order_no="PO-5")
        s = await opened(h, 2)
        ids = list(s.children)
        first_run = h.result_run_id
        for i in range(60):  # comments grow the history until the parent continues as new
            await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text=f"chasing ({i})"))
            if (await h.describe()).run_id != first_run:
                break
        assert (await h.describe()).run_id != first_run
        s = await until(h, lambda s: "fan_out" in s.active, "the next run waits again")
        assert list(s.children) == ids  # the same children: none opened twice

        await finish_step(env, ids[0])
        s = await until(h, lambda s: s.children[ids[0]].status == S.CLOSED, "the first child found closed")
        assert s.active == ["fan_out"]
        await finish_step(env, ids[1])
        s = await until(h, lambda s: "check" in s.active, "the parent goes on")
    assert s.nodes["fan_out"].outcome == "all_finished"
    assert [s.children[i].status for i in ids] == [S.CLOSED, S.CLOSED]
    async with env.db.session() as session:  # two children in all: none opened twice
        q = (
            select(func.count())
            .select_from(Ticket)
            .where(col(Ticket.idempotency_key).startswith(f"child:{s.ticket_id}:"))
        )
        assert (await session.exec(q)).one() == 2


# --- children.prepare: idempotent by the child's key ---


async def test_prepare_twice_writes_one_row_and_answers_the_same(env):
    key = child_key(f"SPX{uuid.uuid4().hex[:8].upper()}", "fan_out", 0, 1)
    inp = PrepareChild(key=key, parent_id="SPX", node="fan_out", ticket_type=STEP.key, region="east",
                       priority=Priority.NORMAL, title="prepared", fields={"note": "n"})  # fmt: skip
    activities = ActivityEnvironment()
    first = await activities.run(children.prepare, inp)
    again = await activities.run(children.prepare, inp)
    assert first.model_dump() == again.model_dump()
    assert (first.ticket_id, first.parent_id, first.created_by.id) == (ticket_id_for_key(key), "SPX", "system")
    async with env.db.session() as session:
        row = await session.get(Ticket, first.ticket_id)
    assert row is not None and row.seq == 0 and row.idempotency_key == key

    with pytest.raises(ApplicationError) as err:
        await activities.run(children.prepare, inp.model_copy(update={"key": key + "x", "fields": {"nope": 1}}))
    assert (err.value.type, err.value.non_retryable) == ("Children:InvalidFields", True)
    with pytest.raises(ApplicationError) as err:
        await activities.run(children.prepare, inp.model_copy(update={"key": key + "y", "ticket_type": "teleport"}))
    assert err.value.type == "Children:UnknownTicketType"


# --- template validation (domain/spawn_validation.py) ---


def test_spawn_validation_names_each_problem():
    project = preset("installation_project").spec
    installation = preset("installation").spec
    assert spawn_problems(project) == []
    assert spawn_problems(project, {"installation": installation}) == []
    assert [p.msg for p in spawn_problems(project, {})] == ["unknown ticket type 'installation': publish it first"] * 2

    bad = project.model_copy(deep=True)
    bad.nodes[0].children[0].fields = {"order_no": "order_no", "address": "product", "colour": "1 +"}
    found = {(p.loc, p.msg) for p in spawn_problems(bad, {"installation": installation})}
    at = ("nodes", 0, "children", 0)
    assert found == {
        ((*at, "fields", "colour"), "expression '1 +': does not parse: 1 +"),
        ((*at, "fields", "colour"), "installation has no field 'colour'"),
        ((*at, "fields", "address"), "'product' is a text field; installation's 'address' is a location field"),
        ((*at, "fields"), "installation requires product: give a value"),
    }
    itself = project.model_copy(deep=True)
    itself.nodes[0].children[1].ticket_type = "installation_project"
    assert [p.loc for p in spawn_problems(itself)] == [("nodes", 0, "children", 1, "ticket_type")]
    back = installation.model_copy(deep=True)  # installation would spawn projects again: a loop
    back.nodes.append(
        SpawnNode(id="again", children=[ChildSpec(ticket_type="installation_project", title="x")], next="done")
    )
    assert [p.msg for p in spawn_problems(project, {"installation": back})] == [
        "spawns come back to this template: installation_project → installation → installation_project"
    ]
