"""TicketWorkflow on the time-skipping server, projection replaced by a recording mock."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import search_attributes as attrs
from models.ticket import (
    ActorRef,
    AssignInput,
    CancelInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    EventInput,
    PersonLeft,
    Priority,
    ProjectionInput,
    ReopenInput,
    ResolveInput,
    StartInput,
    TicketInput,
    TicketResult,
    TicketStatus,
)
from tests.support import preset
from workflows.ticket import INVALID_TRANSITION, MOVING, TicketWorkflow

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENGINEER = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])


class Recorder:
    def __init__(self) -> None:
        self.changes: list[ProjectionInput] = []
        self.told: list[dict] = []

        @activity.defn(name="projection.record_ticket_changes")
        async def record(change: ProjectionInput) -> None:
            self.changes += change.events

        @activity.defn(name="notify.send")
        async def send(payload: dict) -> None:
            self.told.append(payload)

        self.active: set[str] = set()  # who the directory shows as active (everyone else has left)

        @activity.defn(name="directory.is_active")
        async def is_active(person_id: str) -> bool:
            return person_id in self.active

        self.activities = [record, send, is_active]

    def seqs(self, ticket_id: str) -> list[int]:
        return [e.seq for e in self.changes if e.ticket_id == ticket_id]


def ticket_input(**overrides) -> TicketInput:
    ticket_id = f"T{uuid.uuid4().hex[:12].upper()}"
    base = dict(
        ticket_id=ticket_id,
        ticket_type="general",
        region="east",
        priority=Priority.HIGH,
        title="Compressor #3 overheating",
        created_by=AGENT,
        created_at=datetime.now(UTC),  # SLA clocks run from intake
        template=preset("general"),
    )
    return TicketInput(**{**base, **overrides})


@pytest.fixture
async def env_worker(tsenv: WorkflowEnvironment):
    recorder = Recorder()
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(tsenv.client, task_queue=queue, workflows=[TicketWorkflow], activities=recorder.activities):
        yield tsenv, queue, recorder


async def start(env: WorkflowEnvironment, queue: str, inp: TicketInput) -> WorkflowHandle:
    return await env.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)


async def test_whole_lifecycle_with_reopen(env_worker):
    env, queue, recorder = env_worker
    inp = ticket_input()
    h = await start(env, queue, inp)

    s = await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))
    assert (s.status, s.assignee, s.seq) == (TicketStatus.ASSIGNED, "eng-li", 3)
    s = await h.execute_update(TicketWorkflow.start, StartInput(actor=ENGINEER))
    assert s.status == TicketStatus.IN_PROGRESS
    s = await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENGINEER, resolution="fan replaced"))
    assert (s.status, s.resolution) == (TicketStatus.RESOLVED, "fan replaced")
    s = await h.execute_update(TicketWorkflow.reopen, ReopenInput(actor=AGENT, reason="still hot"))
    assert (s.status, s.resolution) == (TicketStatus.IN_PROGRESS, None)
    s = await h.execute_update(TicketWorkflow.comment, CommentInput(actor=ENGINEER, text="ordered a new sensor"))
    assert s.comment_count == 1
    s = await h.execute_update(TicketWorkflow.assign, AssignInput(actor=AGENT, assignee="eng-zhao"))
    assert s.assignee == "eng-zhao"
    zhao = ActorRef(id="eng-zhao", roles=["engineer"], regions=["east"])
    with pytest.raises(WorkflowUpdateFailedError):  # no longer eng-li's task
        await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENGINEER, resolution="sensor replaced"))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=zhao, resolution="sensor replaced"))
    s = await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    assert s.status == TicketStatus.CLOSED and s.closed_at is not None

    result: TicketResult = await h.result()
    assert result.state.status == TicketStatus.CLOSED
    seqs = recorder.seqs(inp.ticket_id)
    assert seqs == list(range(1, len(seqs) + 1))
    actions = [e.action for e in recorder.changes if e.ticket_id == inp.ticket_id]
    assert actions == [
        "created", "task_opened", "claim", "start", "resolve", "resolved",
        "reopen", "comment", "assign", "resolve", "resolved", "close",
    ]  # fmt: skip
    assert result.state.path == ["work", "done", "done"]  # reopened: the same task resumed, the end reached again
    first = recorder.changes[0]
    assert (first.from_status, first.to_status) == (None, TicketStatus.NEW)

    desc = await h.describe()
    sa = desc.typed_search_attributes
    assert sa.get(attrs.TICKET_STATUS) == "closed"
    assert sa.get(attrs.TICKET_ASSIGNEE) == "eng-zhao"  # a finished ticket names who did the last of the work
    assert result.state.assignee == "eng-zhao"
    assert sa.get(attrs.TICKET_PRIORITY) == "high"


async def test_rejected_update_names_status_and_leaves_no_history(env_worker):
    env, queue, _ = env_worker
    h = await start(env, queue, ticket_input())
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))
    before = _update_events(await h.fetch_history())

    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    cause = err.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INVALID_TRANSITION
    assert cause.details[0]["status"] == "assigned"
    assert cause.details[0]["allowed_actions"] == [
        "assign",
        "start",
        "cancel",
        "comment",
        "delegate",
        "request_info",
        "change_priority",
    ]

    # No update event is written for a rejected update (the dev-server test in tests/api checks that
    # the history does not grow at all; this server may still record an empty workflow task).
    assert _update_events(await h.fetch_history()) == before
    state = await h.query(TicketWorkflow.get_state)
    assert state.status == TicketStatus.ASSIGNED and state.seq == 3


def _update_events(history) -> list[int]:
    return [e.event_type for e in history.events if "UPDATE" in EventType.Name(e.event_type)]


async def test_cancel_ends_the_workflow(env_worker):
    env, queue, recorder = env_worker
    inp = ticket_input()
    h = await start(env, queue, inp)
    s = await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=AGENT, reason="duplicate report"))
    assert s.status == TicketStatus.CANCELLED
    assert (await h.result()).state.status == TicketStatus.CANCELLED
    cancel = [e for e in recorder.changes if e.action == "cancel"]
    assert [e.data for e in cancel] == [{"reason": "duplicate report"}]


async def test_concurrent_claims_one_wins(env_worker):
    env, queue, _ = env_worker
    h = await start(env, queue, ticket_input())
    a = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
    b = ActorRef(id="eng-zhao", roles=["engineer"], regions=["east"])
    results = await asyncio.gather(
        h.execute_update(TicketWorkflow.claim, ClaimInput(actor=a)),
        h.execute_update(TicketWorkflow.claim, ClaimInput(actor=b)),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, WorkflowUpdateFailedError)]
    assert len(wins) == 1 and len(losses) == 1
    state = await h.query(TicketWorkflow.get_state)
    assert state.assignee == wins[0].assignee and state.seq == 3


async def test_continue_as_new_carries_state(env_worker):
    env, queue, recorder = env_worker
    inp = ticket_input(history_limit=40)
    h = await start(env, queue, inp)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))
    for i in range(12):
        await h.execute_update(TicketWorkflow.comment, CommentInput(actor=ENGINEER, text=f"note {i}"))
    first_run = h.result_run_id  # the run start_workflow began
    # A handle without run id follows the chain to the latest run.
    latest = env.client.get_workflow_handle_for(TicketWorkflow.run, h.id)
    desc = await latest.describe()
    assert desc.run_id != first_run, "expected a continue-as-new after 40 history events"
    state = await latest.query(TicketWorkflow.get_state)
    assert (state.comment_count, state.assignee, state.seq) == (12, "eng-li", 15)

    async def act(update, input) -> None:  # as the API does: a run handing over says "moving"
        for _ in range(50):
            try:
                await latest.execute_update(update, input)
                return
            except WorkflowUpdateFailedError as err:
                if getattr(err.cause, "type", None) != MOVING:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("still moving")

    await act(TicketWorkflow.start, StartInput(actor=ENGINEER))
    await act(TicketWorkflow.resolve, ResolveInput(actor=ENGINEER, resolution="ok"))
    await act(TicketWorkflow.close, CloseInput(actor=AGENT))
    assert (await latest.result()).state.seq == 19
    assert recorder.seqs(inp.ticket_id) == list(range(1, 20))  # no gap, no repeat across runs


async def test_actions_and_departures_during_the_hand_over_to_the_next_run(tsenv: WorkflowEnvironment):
    """While a run drains before continuing as new (here: a notification still being sent), an
    action is refused as "moving" (the API sends it again) and a departure waits in the state:
    the next run takes the work back. Neither hangs the ticket nor is lost."""
    recorder, gate = Recorder(), asyncio.Event()

    @activity.defn(name="notify.send")
    async def slow_send(payload: dict) -> None:
        await gate.wait()
        recorder.told.append(payload)

    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(
        tsenv.client,
        task_queue=queue,
        workflows=[TicketWorkflow],
        activities=[recorder.activities[0], slow_send, recorder.activities[2]],
    ):
        inp = ticket_input(history_limit=30)
        h = await start(tsenv, queue, inp)
        await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))
        await h.execute_update(TicketWorkflow.assign, AssignInput(actor=AGENT, assignee="eng-zhao"))  # tells eng-zhao
        moving = None
        for i in range(40):  # comments until the history is long: the run starts handing over
            try:
                comment = CommentInput(actor=ENGINEER, text=f"note {i}")
                await asyncio.wait_for(h.execute_update(TicketWorkflow.comment, comment), timeout=15)  # never hangs
            except WorkflowUpdateFailedError as err:
                moving = err.cause
                break
        assert isinstance(moving, ApplicationError) and moving.type == MOVING
        with pytest.raises(WorkflowUpdateFailedError) as event:  # an event too: it would be lost on the way
            await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_reply", actor=AGENT, text="hi"))
        assert event.value.cause.type == MOVING
        await h.signal(TicketWorkflow.person_left, PersonLeft(person_id="eng-zhao", reason="left"))
        state = await h.query(TicketWorkflow.get_state)
        assert [p.person_id for p in state.pending_departures] == ["eng-zhao"]  # carried, not lost
        gate.set()  # the notification goes out; the run continues as new
        latest = tsenv.client.get_workflow_handle_for(TicketWorkflow.run, h.id)
        released: list[str] = []
        for _ in range(200):
            try:  # while the next run takes over, the test server may not answer a query in time
                state = await latest.query(TicketWorkflow.get_state, rpc_timeout=timedelta(seconds=5))
            except RPCError:
                await asyncio.sleep(0.1)
                continue
            released = [e.data["person"] for e in recorder.changes if e.action == "released"]
            if not state.pending_departures and state.nodes["work"].assignee is None and released:
                break
            await asyncio.sleep(0.05)
        assert (state.nodes["work"].assignee, state.nodes["work"].status, state.pending_departures) == (
            None,
            "open",
            [],
        )
        assert (await latest.describe()).run_id != h.result_run_id
        assert released == ["eng-zhao"]
        await latest.execute_update(TicketWorkflow.comment, CommentInput(actor=ENGINEER, text="after the hand-over"))


async def test_only_changed_search_attributes_are_upserted(env_worker):
    """A change that moves no search attribute (a comment) adds no upsert command and no history
    event; one that moves one (start: the status) upserts only that one."""
    env, queue, _ = env_worker
    h = await start(env, queue, ticket_input())
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))

    async def upserts() -> list:
        return [
            e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            async for e in h.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        ]

    before = await upserts()
    for i in range(3):
        await h.execute_update(TicketWorkflow.comment, CommentInput(actor=ENGINEER, text=f"note {i}"))
    assert len(await upserts()) == len(before)  # three comments: nothing to upsert
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENGINEER))
    after = await upserts()
    assert len(after) == len(before) + 1 and set(after[-1]) == {attrs.TICKET_STATUS.name}
    desc = await h.describe()
    sa = desc.typed_search_attributes
    assert (sa.get(attrs.TICKET_STATUS), sa.get(attrs.TICKET_ASSIGNEE)) == ("in_progress", "eng-li")
