"""The fault suite's rig: workers as child processes on a fresh task queue of the dev server,
a ticket template that runs every side-effecting step, fresh stock, receivers for e-mail and
SMS / IM, and the read-model check.

Shared by the modules of tests/faults/ (import from here, do not copy):

- ``POSTGRES_ONLY``: the mark that skips a module on SQLite (the suite runs in CI on PostgreSQL).
- ``rig`` (``FaultRig``): ``worker()`` starts ``python -m workers``, ``killer(point)`` starts
  ``python -m tests.faults.killer`` (the same worker, dying once at ``point``), both on the
  test's own task queue with the test database; ``open_ticket()`` starts a ticket (``FLOW`` by
  default) through the signing client; ``work()`` does a task as eng-li;
  ``retry_dead_attempt()`` has Temporal time out, now, the attempt a dead worker held;
  ``attempts()`` reads who ran an activity's attempts from the history. At the end every ticket
  is terminated and every process killed.
- ``stock``: 100 units of a priced part in a fresh warehouse of region east standing on a site
  of its own (``stock.site``: the nearest warehouse to it).
- ``read_model_caught_up(db, handle)``: the read model ends with exactly the workflow's
  events (seq 1..n, no gap, no duplicate) and the ticket row at the workflow's seq and status.
- ``smtp_sink`` (aiosmtpd), ``hook_receiver`` (the SMS / IM provider, checking signatures) and
  ``channel_settings(sink, receiver)``, the ``TICKETFLOW_*`` values that send to them.
- ``within(awaitable, seconds, what)``: a deadline on anything a fault could hang;
  ``with_host(url, host, port)``: a database URL through a proxy.
"""

import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy.engine import make_url
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest, UpdateActivityOptionsRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.channels.webhook import verify_signature
from models.db import Database
from models.inventory_tables import StockLevel, Warehouse
from models.tables import Ticket, TicketEventRow
from models.template import TemplateSpec, TemplateVersion
from models.ticket import ActorRef, ClaimInput, CompleteInput, Priority, StartInput, TicketInput, TicketState
from store.inventory import receive
from tests.conftest import settings_for, task_queue
from tests.e2e.helpers import child_env, spawn
from tests.support import until_state
from workflows.ticket import TicketWorkflow

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
PART = "RLY-START-220"  # a demo part the demo price list prices (23.80 CNY)

# Every side effect a ticket has, in one walk: reserve at the nearest warehouse, a task whose
# form says how many were used, consume them (releasing the rest), price the statement, ask
# purchasing to restock (the plug-in activity, through an ``action`` node), end (resolved).
# No SLA (no timers) and no calendar (24x7).
FLOW = TemplateSpec.model_validate(
    {
        "key": "fault_flow",
        "name": "Fault suite: every side effect once",
        "fields": [
            {"name": "site", "type": "location"},
            {"name": "part_sku", "type": "text"},
            {"name": "part_quantity", "type": "number"},
            {"name": "used", "type": "number"},
            {"name": "purchase_request_id", "type": "number"},
        ],
        "start": "reserve",
        "nodes": [
            {"id": "reserve", "type": "reserve_parts", "sku_field": "part_sku", "quantity_field": "part_quantity",
             "location_field": "site", "next": "work"},
            {"id": "work", "type": "task", "assignee": {"role": "engineer"}, "form": ["used"], "required": ["used"],
             "next": "consume"},
            {"id": "consume", "type": "consume_parts", "reservation": "reserve", "used_field": "used",
             "next": "settle"},
            {"id": "settle", "type": "settle", "services": ["INSPECT"], "next": "restock"},
            {"id": "restock", "type": "action", "activity": "purchasing.create_request", "timeout": "PT30S",
             "inputs": {"ticket_id": "ticket_id", "sku": "part_sku", "quantity": "int(part_quantity)",
                        "reason": '"restock after repair"'},
             "outputs": {"purchase_request_id": "request_id"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
)  # fmt: skip
# What a dead worker's attempt is given once the test asks Temporal to time it out: a new
# attempt gets it too, far more than the milliseconds the activities here take.
# What FLOW records, in order, when each of its side effects happened once.
FLOW_EVENTS = [
    "created",
    "reserve_parts",
    "task_opened",
    "claim",
    "start",
    "complete",
    "consume_parts",
    "settle",
    "action",
    "resolved",
]
RETRY_START_TO_CLOSE = timedelta(seconds=2)
T = TypeVar("T")


async def within(aw: Awaitable[T], seconds: float, what: str) -> T:
    """``aw``'s result, or a failure naming ``what`` after ``seconds`` (a fault must not hang a test)."""
    task = asyncio.ensure_future(aw)
    await asyncio.wait([task], timeout=seconds)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError(f"{what}: not done in {seconds}s")
    return task.result()


POSTGRES_ONLY = pytest.mark.skipif(
    not os.environ.get("TICKETFLOW_TEST_DATABASE_URL"),
    reason="fault suite: needs PostgreSQL (TICKETFLOW_TEST_DATABASE_URL): worker processes share the database, "
    "and a killed transaction or a cut connection must be rolled back by a database server",
)


# --- processes ---


@dataclass
class WorkerProcess:
    """A worker child process (its own process group) and its log."""

    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def exited(self, timeout: float) -> int:
        """Wait (without blocking the event loop) for the process to end; its exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} (pid {self.pid}) still runs after {timeout}s:\n{self.log_text()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    async def stop(self, timeout: float = 20) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not end in time."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return await self.exited(timeout)
            except AssertionError:
                self.proc.kill()
        return self.proc.wait()


@dataclass
class Killed:
    """What the killer's marker recorded: where it died."""

    target: str
    when: str
    pid: int


@dataclass
class FaultRig:
    """One test's world: the dev server's signing client, a fresh task queue, the test database."""

    client: Client
    db: Database
    database_url: str
    queue: str
    tmp: Path
    worker_env: dict[str, str]
    processes: list[WorkerProcess] = field(default_factory=list)
    handles: list[WorkflowHandle] = field(default_factory=list)

    # -- workers --

    def env(self, **overrides: str) -> dict[str, str]:
        """The child environment for this rig's workers, with ``TICKETFLOW_*`` overrides."""
        return {**self.worker_env, **{f"TICKETFLOW_{k.upper()}": v for k, v in overrides.items()}}

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> WorkerProcess:
        log = self.tmp / f"{name}.log"
        p = WorkerProcess(name, spawn([sys.executable, *args], env, log), log)
        self.processes.append(p)
        return p

    def worker(self, name: str = "worker", **settings: str) -> WorkerProcess:
        """``python -m workers`` on this rig's queue (``settings``: more ``TICKETFLOW_*`` values)."""
        return self._spawn(name, ["-m", "workers"], self.env(**settings))

    def killer(self, point: str, *, match: Sequence[str] = (), settle_s: float = 0.0, **settings: str) -> WorkerProcess:
        """``python -m tests.faults.killer point``: the same worker, dying once at ``point`` (on
        a call whose arguments' repr contains every ``match`` string; after ``settle_s``)."""
        args = ["-m", "tests.faults.killer", point, "--marker", str(self.marker), "--settle", str(settle_s)]
        for m in match:
            args += ["--match", m]
        return self._spawn("killer", args, self.env(**settings))

    @property
    def marker(self) -> Path:
        return self.tmp / "killer.died"

    async def killed(self, killer: WorkerProcess, timeout: float = 20) -> Killed:
        """Wait for the killer to die by SIGKILL at its point; what its marker says."""
        code = await killer.exited(timeout)
        assert code == -signal.SIGKILL, f"the killer ended with {code}, not SIGKILL:\n{killer.log_text()}"
        note = json.loads(self.marker.read_text())
        assert note["pid"] == killer.pid
        return Killed(note["target"], note["when"], note["pid"])

    # -- tickets --

    @staticmethod
    def new_ticket_id() -> str:
        return f"TF{uuid.uuid4().hex[:12].upper()}"

    async def open_ticket(
        self, title: str, template: TemplateSpec = FLOW, ticket_id: str | None = None, **fields: Any
    ) -> WorkflowHandle:
        """Start a ticket of region east on ``template`` with these form values (as intake would)."""
        inp = TicketInput(
            ticket_id=ticket_id or self.new_ticket_id(),
            ticket_type=template.key,
            region="east",
            priority=Priority.NORMAL,
            title=title,
            created_by=AGENT,
            created_at=datetime.now(UTC),
            template=TemplateVersion(key=template.key, version=1, spec=template),
            fields=fields,
        )
        h = await self.client.start_workflow(
            TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=self.queue
        )
        self.handles.append(h)
        return h

    async def until(
        self, h: WorkflowHandle, check: Callable[[TicketState], Any], what: str, timeout: float = 20
    ) -> TicketState:
        return await until_state(h, check, what, timeout)

    async def work(self, h: WorkflowHandle, node: str, **fields: Any) -> TicketState:
        """The task ``node``, claimed, started and completed by eng-li with ``fields``; returns
        the state once the walk has settled after it (the update's reply)."""
        await self.until(h, lambda s: node in s.active, f"task {node}")
        await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG, node=node))
        await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG, node=node))
        return await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG, node=node, fields=fields))

    # -- the dead worker's attempt --

    async def pending_activity(self, h: WorkflowHandle, activity_type: str, timeout: float = 10) -> PendingActivityInfo:
        """The ticket's started attempt of ``activity_type`` (the one a dead worker held)."""
        deadline = time.monotonic() + timeout
        while True:
            desc = await self.client.workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace=self.client.namespace, execution=WorkflowExecution(workflow_id=h.id)
                )
            )
            found = [p for p in desc.pending_activities if p.activity_type.name == activity_type]
            if found and found[0].state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{h.id}: no started {activity_type} attempt; pending: {desc.pending_activities}")
            await asyncio.sleep(0.05)

    async def retry_dead_attempt(self, h: WorkflowHandle, activity_type: str) -> PendingActivityInfo:
        """Temporal times out the attempt a dead worker held now, instead of after the node's
        start-to-close timeout (30 s to 5 min): what an operator does with ``temporal activity
        update-options``. The retry is Temporal's own (the activity's retry policy), on whichever
        worker polls next; nothing else about the attempt changes."""
        pending = await self.pending_activity(h, activity_type)
        await self.client.workflow_service.update_activity_options(
            UpdateActivityOptionsRequest(
                namespace=self.client.namespace,
                execution=WorkflowExecution(workflow_id=h.id),
                id=pending.activity_id,
                activity_options=ActivityOptions(
                    start_to_close_timeout=Duration(seconds=int(RETRY_START_TO_CLOSE.total_seconds()))
                ),
                update_mask=FieldMask(paths=["start_to_close_timeout"]),
                identity="tests/faults",
            )
        )
        return pending

    async def attempts(self, h: WorkflowHandle, activity_type: str) -> list[tuple[int, str]]:
        """(attempt, worker identity) of each started attempt of ``activity_type`` that ended:
        Temporal records only the last attempt's start in the history, with its number."""
        scheduled: dict[int, str] = {}
        out: list[tuple[int, str]] = []
        async for e in h.fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                a = e.activity_task_started_event_attributes
                if scheduled.get(a.scheduled_event_id) == activity_type:
                    out.append((a.attempt, a.identity))
        return out

    # -- clean-up --

    async def close(self) -> None:
        """The test is over: its tickets are terminated and its workers killed (a test that wants
        a clean shutdown asserts ``stop()`` itself)."""
        for h in self.handles:
            try:
                if (await h.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await h.terminate("fault test over")
            except Exception:  # noqa: BLE001 - best effort: the dev server is shared, the queue is not
                pass
        for p in self.processes:
            if p.alive():
                p.proc.kill()
            p.proc.wait()


def worker_env(database_url: str, devserver: WorkflowEnvironment, queue: str) -> dict[str, str]:
    """``child_env`` for a worker of the test database on ``queue`` of the dev server, signing
    key as the tests' clients sign."""
    settings = settings_for(database_url, devserver, queue)
    assert settings.action_signing_key is not None
    return child_env(
        database_url=database_url,
        temporal_address=settings.temporal_address,
        task_queue=queue,
        worker_shutdown_grace_s="5",
        action_signing_key=settings.action_signing_key.get_secret_value(),
        action_signing_key_id=settings.action_signing_key_id,
    )


@pytest.fixture
async def rig(
    db: Database, database_url: str, devserver: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[FaultRig]:
    queue = task_queue()
    r = FaultRig(devserver.client, db, database_url, queue, tmp_path, worker_env(database_url, devserver, queue))
    try:
        yield r
    finally:
        await r.close()


def with_host(url: str, host: str, port: int) -> str:
    """``url`` pointing at another host and port (e.g. a proxy), everything else kept."""
    return make_url(url).set(host=host, port=port).render_as_string(hide_password=False)


# --- stock ---


@dataclass
class Stock:
    warehouse: str
    sku: str
    received: int
    site: dict[str, Any]  # a location field's value: the warehouse stands on it
    db: Database

    async def level(self) -> tuple[int, int]:
        """(on_hand, reserved) at the rig's warehouse."""
        async with self.db.session() as s:
            row = (
                await s.exec(
                    select(StockLevel).where(StockLevel.warehouse == self.warehouse, StockLevel.sku == self.sku)
                )
            ).one()
            return row.on_hand, row.reserved


@pytest.fixture
async def stock(db: Database) -> Stock:
    """100 units of ``PART`` in a fresh east warehouse on a site of its own (around Hangzhou, far
    from the demo warehouses and, 10 m or more, from every other test's): the nearest to it."""
    wh = f"WF-{uuid.uuid4().hex[:8].upper()}"
    n = uuid.uuid4().int % 1_000_000
    site = {"lat": 30.0 + n // 1000 / 10_000, "lon": 120.0 + n % 1000 / 10_000, "address": f"fault site {wh}"}
    async with db.session() as s:
        s.add(Warehouse(code=wh, name="fault suite", region="east", kind="regional", lat=site["lat"], lon=site["lon"]))
        await s.flush()
        await receive(
            await s.connection(), key=f"faults:{wh}:{PART}", warehouse=wh, sku=PART, quantity=100, actor_id="t"
        )
        await s.commit()
    return Stock(wh, PART, 100, site, db)


# --- the read model ---


async def read_model_caught_up(db: Database, h: WorkflowHandle, timeout: float = 20) -> list[TicketEventRow]:
    """The workflow's state (queried) and the read model agree: events seq 1..n with n the
    workflow's seq — no gap, no duplicate — and the ticket row at seq n with the workflow's
    status. Waits for the projection to catch up; returns the events in seq order."""
    deadline = time.monotonic() + timeout
    while True:
        state: TicketState = await h.query(TicketWorkflow.get_state)
        async with db.session() as s:
            row = await s.get(Ticket, state.ticket_id, populate_existing=True)
            events = list(
                await s.exec(
                    select(TicketEventRow)
                    .where(TicketEventRow.ticket_id == state.ticket_id)
                    .order_by(col(TicketEventRow.seq), col(TicketEventRow.id))
                )
            )
        if (row is not None and row.seq == state.seq) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert row is not None, f"{state.ticket_id}: no ticket row"
    assert [e.seq for e in events] == list(range(1, state.seq + 1)), "events are not exactly seq 1..n"
    assert (row.seq, row.status) == (state.seq, state.status.value), "the ticket row is not the workflow's state"
    assert events[-1].to_status == state.status.value
    return events


# --- receivers: an SMTP sink and the SMS / IM webhook provider ---

WEBHOOK_SECRET = "fault-suite-webhook-secret-" + "s" * 32


class SmtpSink:
    """aiosmtpd handler: every message it accepts, with its envelope recipients."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def of_ticket(self, ticket_id: str) -> list[EmailMessage]:
        with self._lock:
            return [m for _, m in self.messages if m["X-Ticketflow-Ticket"] == ticket_id]


@dataclass
class Hook:
    delivery: str
    valid: bool  # the signature checked out
    body: dict[str, Any]


class HookReceiver:
    """The SMS / IM provider: checks each request's signature, answers 200, keeps them all."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[Hook] = []

    async def hook(self, request: Request) -> JSONResponse:
        raw, h = await request.body(), request.headers
        valid = verify_signature(
            WEBHOOK_SECRET, h.get("x-ticketflow-timestamp", ""), raw, h.get("x-ticketflow-signature")
        )
        self.calls.append(Hook(h.get("x-ticketflow-delivery", ""), valid, json.loads(raw)))
        return JSONResponse({"ok": valid}, status_code=200 if valid else 401)

    def of_ticket(self, ticket_id: str) -> list[Hook]:
        return [c for c in self.calls if c.body.get("ticket_id") == ticket_id]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sink.port = sock.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
async def hook_receiver() -> AsyncIterator[HookReceiver]:
    rec = HookReceiver()
    app = Starlette(routes=[Route("/hook", rec.hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await within(_started(server), 10, "the webhook receiver")
    rec.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/hook"
    try:
        yield rec
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> None:
    while not server.started:
        await asyncio.sleep(0.02)


def channel_settings(sink: SmtpSink, receiver: HookReceiver) -> dict[str, str]:
    """``TICKETFLOW_*`` values sending e-mail to ``sink`` and SMS / IM to ``receiver``."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": str(sink.port),
        "smtp_from": "Ticketflow <ticketflow@fault.test>",
        "webhook_url": receiver.url,
        "webhook_secret": WEBHOOK_SECRET,
        "webhook_timeout_s": "5",
    }
