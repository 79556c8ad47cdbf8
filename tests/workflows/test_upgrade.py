"""An upgrade in the middle of tickets (docs/upgrading.md), on the dev server with Worker Versioning.

Build "A" is today's versioned worker (``workers.versioning.workflows``: the classes of
workflows/versioned.py); build "B" runs ``PatchedTicketWorkflow`` (tests/workflows/
upgrade_build_b.py) instead of the ticket's: the same ticket with a change behind
``workflow.patched``. Both are versions of one Worker Deployment (a name of its own per test) on
one task queue, with the real activities and the real API. Tickets are created and claimed on A;
B is deployed beside it and made current; A stops; the tickets finish on B.
"""

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1 import VersioningBehavior as Behavior
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.registry import ACTIVITIES
from api.app import create_app
from models.settings import Settings
from models.ticket import PersonLeftInput
from tests.conftest import Stack, settings_for, task_queue
from tests.workflows.upgrade_build_b import NOTE, PATCH, PatchedTicketWorkflow, UnguardedTicketWorkflow
from workers import versioning
from workflows.person_left import PersonLeftWorkflow
from workflows.registry import WORKFLOWS
from workflows.ticket import TicketWorkflow

PINNED = Behavior.VERSIONING_BEHAVIOR_PINNED


def with_ticket(cls: type) -> list[type]:
    """The registry's workflow types with ``cls`` as the ticket's (``versioning.workflows`` then
    takes each other type's variant)."""
    return [cls if w is TicketWorkflow else w for w in WORKFLOWS]


@pytest.fixture
async def api(db, database_url: str, devserver: WorkflowEnvironment) -> AsyncIterator[Stack]:
    """The API on a fresh task queue, with no worker: each test brings its builds."""
    settings = settings_for(database_url, devserver, task_queue())
    app = create_app(settings, client=devserver.client)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield Stack(http, settings, devserver.client, worker=None)


def build(settings: Settings, deployment: str, build_id: str) -> Settings:
    return settings.model_copy(update={"worker_versioning": True, "deployment_name": deployment, "build_id": build_id})


def worker(client: Client, settings: Settings, workflows: list[type], activities: list[Callable[..., Any]]) -> Worker:
    config = versioning.deployment_config(settings)
    assert config is not None
    return Worker(client, task_queue=settings.task_queue, workflows=workflows, activities=activities,
                  deployment_config=config)  # fmt: skip


async def builds_of(client: Client, workflow_id: str) -> list[str]:
    """The build id of every completed workflow task of the run, in order."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]


def first_event_on(history: WorkflowHistory, build_id: str) -> int:
    return next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        and e.workflow_task_completed_event_attributes.deployment_version.build_id == build_id
    )


def patch_markers(history: WorkflowHistory) -> list[int]:
    return [
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and PATCH.encode() in e.marker_recorded_event_attributes.SerializeToString()
    ]


async def replays(history: WorkflowHistory, workflows: list[type]) -> bool:
    replayer = Replayer(workflows=workflows, data_converter=pydantic_data_converter)
    return (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None


def activity_name(fn: Callable[..., Any]) -> str:
    return fn.__temporal_activity_definition.name  # type: ignore[attr-defined]


async def until(probe: Callable[[], Awaitable[Any]], want: Any, what: str, timeout: float = 10.0) -> None:
    """Poll ``probe`` until it answers ``want`` (visibility is eventually consistent)."""
    deadline = time.monotonic() + timeout
    while (got := await probe()) != want:
        assert time.monotonic() < deadline, f"{what}: {got!r}"
        await asyncio.sleep(0.05)


async def test_a_ticket_claimed_on_build_a_finishes_on_patched_build_b(api: Stack) -> None:
    client, deployment = api.client, f"tf-upgrade-{uuid.uuid4().hex[:8]}"
    a, b = build(api.settings, deployment, "A"), build(api.settings, deployment, "B")
    build_a, build_b = versioning.workflows(a), versioning.workflows(b, with_ticket(PatchedTicketWorkflow))
    # A's directory answers a leaver's tickets only when told to: a pinned run waits on A meanwhile.
    asked, answer = asyncio.Event(), asyncio.Event()

    @activity.defn(name="directory.held_tickets")
    async def held_tickets(person_id: str) -> list[str]:
        asked.set()
        await answer.wait()
        return []

    activities_a = [f for f in ACTIVITIES if activity_name(f) != "directory.held_tickets"] + [held_tickets]
    worker_a = worker(client, a, build_a, activities_a)
    run_a = asyncio.create_task(worker_a.run())
    try:
        assert await versioning.set_current(client, versioning.version(a), timeout_s=15) is None  # was unversioned

        # Halfway on A: both tickets created and claimed; the second one's work also started.
        new = (await api.create(title="Compressor #3 overheating")).json()["ticket_id"]
        old = (await api.create(title="Boiler pressure low")).json()["ticket_id"]
        for tid in (new, old):
            assert (await api.act(tid, "claim")).status_code == 200
        assert (await api.act(old, "start")).status_code == 200
        leaver = await client.start_workflow(
            PersonLeftWorkflow.run, PersonLeftInput(person_id="eng-gone"), id=f"person-left-{uuid.uuid4().hex[:8]}",
            task_queue=api.settings.task_queue,
        )  # fmt: skip
        await asyncio.wait_for(asked.wait(), 10)

        # B is deployed beside A, then made current: A drains.
        async with worker(client, b, build_b, ACTIVITIES):
            assert await versioning.set_current(client, versioning.version(b), timeout_s=15) == "A"
            out = io.StringIO()
            assert await versioning.command(["--deployment-name", deployment, "drained", "--build-id", "A"],
                                            b, client, out) == 1, out.getvalue()  # fmt: skip
            assert "keep its workers" in out.getvalue()

            # The pinned leaver finishes on A, where it started, although B is current; one
            # started now starts (and stays) on B.
            answer.set()
            assert await leaver.result() == []
            assert set(await builds_of(client, leaver.id)) == {"A"}
            info = (await leaver.describe()).raw_description.workflow_execution_info.versioning_info
            assert (info.behavior, info.deployment_version.build_id) == (PINNED, "A")
            later = await client.execute_workflow(
                PersonLeftWorkflow.run, PersonLeftInput(person_id="eng-gone-too"),
                id=f"person-left-{uuid.uuid4().hex[:8]}", task_queue=api.settings.task_queue,
            )  # fmt: skip
            assert later == []

            await worker_a.shutdown()  # A stops
            await run_a

            # Both tickets started before B became current: a patch may not be removed yet.
            since = await versioning.current_since(client, versioning.version(b))

            async def predating() -> set[str]:
                runs = await versioning.predating(client, api.settings.task_queue, since, margin=timedelta(0))
                return {wf.id for wf in runs}

            await until(predating, {f"ticket-{new}", f"ticket-{old}"}, "both tickets predate B")

            # Finished on B. The one that reaches ``start`` on B takes the patched branch; the one
            # that took ``start`` on A keeps the old way for the rest of its run.
            for tid in (new, old):
                if tid == new:
                    assert (await api.act(tid, "start")).status_code == 200
                assert (await api.act(tid, "resolve", resolution="fan replaced")).status_code == 200, tid
                assert (await api.act(tid, "close", "agent-wang")).status_code == 200
            after = (await api.create(title="Pump leaking")).json()["ticket_id"]  # started on B
            assert (await api.act(after, "claim")).status_code == 200

            # The read model: the note only on the ticket that started its work on B.
            actions = {tid: [e["action"] for e in (await api.get(tid)).json()["events"]] for tid in (new, old)}
            assert actions[new] == ["created", "task_opened", "claim", "start", NOTE, "resolve", "resolved", "close"]
            assert actions[old] == ["created", "task_opened", "claim", "start", "resolve", "resolved", "close"]

            # No running ticket predates B any more (the one started on B does not count).
            await until(predating, set(), "no ticket predates B")
            out = io.StringIO()
            code = await versioning.command(
                ["predating", "--build-id", "B", "--margin", "0", "--task-queue", api.settings.task_queue],
                b, client, out,
            )  # fmt: skip
            assert code == 0 and "the patch may go" in out.getvalue(), out.getvalue()
            out = io.StringIO()
            assert await versioning.command(["--deployment-name", deployment, "describe"], b, client, out) == 0
            assert f"deployment {deployment}: current B" in out.getvalue()
    finally:
        if not run_a.done():
            await worker_a.shutdown()
            await run_a

    for tid in (new, old):
        builds = await builds_of(client, f"ticket-{tid}")
        assert set(builds) == {"A", "B"} and builds == sorted(builds), builds  # A's tasks, then B's only
    assert set(await builds_of(client, f"ticket-{after}")) == {"B"}  # a ticket created after the switch

    history = {tid: await client.get_workflow_handle(f"ticket-{tid}").fetch_history() for tid in (new, old)}
    # The patch marker: on the ticket that reached the change on B, after B took it over; never
    # on the one that passed that point on A.
    (marker,) = patch_markers(history[new])
    assert marker > first_event_on(history[new], "B")
    assert patch_markers(history[old]) == []
    # Both histories replay against B's code: the release's replay gate passes.
    assert await replays(history[new], build_b)
    assert await replays(history[old], build_b)
    # The same change without the patch breaks the ticket that passed ``start`` on A …
    assert not await replays(history[old], with_ticket(UnguardedTicketWorkflow))
    # … and A's code cannot take back a ticket that took the patched branch (no rollback past it).
    assert not await replays(history[new], build_a)


async def test_a_development_worker_with_versioning_on_makes_itself_current(api: Stack) -> None:
    """``TICKETFLOW_WORKER_VERSIONING_SET_CURRENT`` (development only): a lone versioned worker,
    as ``make run`` would start it, sets its own version current and takes tickets; without it a
    versioned worker gets no task until a release sets a current version."""
    dev = build(api.settings, f"tf-dev-{uuid.uuid4().hex[:8]}", "dev")
    dev = dev.model_copy(update={"worker_versioning_set_current": True})
    async with Worker(api.client, task_queue=dev.task_queue, activities=ACTIVITIES, **versioning.worker_options(dev)):
        await versioning.on_start(api.client, dev)
        tid = (await api.create(title="Compressor #3 overheating")).json()["ticket_id"]
        assert (await api.act(tid, "claim")).status_code == 200
    assert set(await builds_of(api.client, f"ticket-{tid}")) == {"dev"}
