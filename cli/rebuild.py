"""Rebuild the read model from the ticket workflows (``python -m cli rebuild-read-model``).

The read model's ``ticket`` and ``ticket_event`` rows are written by one activity per batch
of changes, ``projection.record_ticket_changes`` (``workflows/run.py``, ``_projector``) — a
local activity in runs recorded before the ``release-2026-12-05`` patch, whose input is
not in the history (a local activity leaves only a marker with its result); the workflow state
keeps no list of events. So a ticket is rebuilt the same way for both: every run of its
continue-as-new chain is fetched and replayed by ``temporalio.worker.Replayer`` with an
outbound interceptor that keeps each ``ProjectionInput`` the code builds, serialised as the SDK
serialises it for the activity. Only batches whose activity completed count (its completion
event, or a local activity's marker, is in the history): exactly what the live projection
wrote. They are written through the projection's own code,
``store.tickets.record_changes``, with ``rebuild=True``: nothing is sent again (no customer
message, no webhook delivery), a row at the same seq is put right, events are rewritten, and a
row is never moved back behind a live ticket's projector.

What a rebuild cannot give back: what only the API knew at intake (the row's ``idempotency_key``
and ``request_hash``) once the row itself is gone; the events of runs whose history Temporal no
longer keeps (namespace retention) — such a ticket is rebuilt from the runs left (its state is
the latest) and reported as partial.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import (
    Interceptor,
    Replayer,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from models.db import Database
from models.ticket import ProjectionInput
from store import tickets
from workflows.registry import WORKFLOWS
from workflows.ticket import workflow_id

PROJECTION = "projection.record_ticket_changes"  # activities/projection.py's activity
TICKET_WORKFLOW = "TicketWorkflow"
WORKFLOW_PREFIX = workflow_id("")  # "ticket-": a ticket's workflow id is the prefix and its id
WRITE_EVENTS = 500  # events per write: one transaction for nearly every ticket, bounded statements for the longest


class RebuildError(Exception):
    """This ticket cannot be rebuilt (the message says why)."""


@dataclass
class Rebuilt:
    ticket_id: str
    runs: int  # histories replayed
    first_seq: int
    seq: int  # the last event's, and the row's
    status: str
    partial: bool  # earlier runs are gone: events before first_seq were not rebuilt

    def line(self) -> str:
        runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        if self.partial:
            return (
                f"{self.ticket_id}  partial  events {self.first_seq}-{self.seq} only "
                f"(the runs before are no longer in Temporal), {self.status}, {runs}"
            )
        return f"{self.ticket_id}  rebuilt  {self.seq} events, {self.status}, {runs}"


# --- reading the projection back out of the workflow code ---


@dataclass
class _Batch:
    """One projection input as the workflow handed it to the activity."""

    payloads: Sequence[Payload]
    written: bool = False  # its activity completed (a local one: its marker is in the history)

    def done(self, task: "asyncio.Future[Any]") -> None:
        self.written = not task.cancelled() and task.exception() is None


class _Capture(Interceptor):
    """Keeps the projection inputs of each replayed run in ``current`` (a list per history:
    the replayer takes one history at a time, and a workflow instance keeps the list that was
    current when it started)."""

    def __init__(self) -> None:
        self.current: list[_Batch] = []

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        capture = self

        class Outbound(WorkflowOutboundInterceptor):
            def __init__(self, next: WorkflowOutboundInterceptor, batches: list[_Batch]) -> None:
                super().__init__(next)
                self.batches = batches

            def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
                if input.activity != PROJECTION:
                    return super().start_activity(input)
                return self.keep(input.args, lambda: super(Outbound, self).start_activity(input))

            def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
                if input.activity != PROJECTION:  # runs recorded before the release-2026-12-05 patch
                    return super().start_local_activity(input)
                return self.keep(input.args, lambda: super(Outbound, self).start_local_activity(input))

            def keep(
                self, args: Sequence[Any], start: Callable[[], workflow.ActivityHandle[Any]]
            ) -> workflow.ActivityHandle[Any]:
                # Serialised now, as the SDK does when it schedules the activity: the state object
                # goes on changing after this call.
                batch = _Batch(pydantic_data_converter.payload_converter.to_payloads(args))
                handle = start()
                handle.add_done_callback(batch.done)
                self.batches.append(batch)
                return handle

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound, capture.current))

        return Inbound


@dataclass
class Runs:
    histories: list[WorkflowHistory]  # oldest first
    complete: bool  # back to the first run


async def runs(client: Client, ticket_id: str) -> Runs:
    """Every run of the ticket's workflow that Temporal still has, oldest first: from the
    latest, back along ``continued_execution_run_id``."""
    wid, run_id = workflow_id(ticket_id), None
    found: list[WorkflowHistory] = []
    while True:
        try:
            history = await client.get_workflow_handle(wid, run_id=run_id).fetch_history()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            if not found:
                raise RebuildError(f"no workflow {wid} in Temporal") from None
            return Runs(found[::-1], complete=False)  # gone with the namespace's retention
        found.append(history)
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not run_id:
            return Runs(found[::-1], complete=True)


async def projection_inputs(histories: Sequence[WorkflowHistory]) -> list[ProjectionInput]:
    """Replay ``histories`` (one chain, oldest first) and return the projection inputs their
    workflow code wrote, in order."""
    capture = _Capture()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, interceptors=[capture])
    per_run: list[list[_Batch]] = []

    async def feed() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            capture.current = []
            per_run.append(capture.current)
            yield history

    async with replayer.workflow_replay_iterator(feed()) as results:
        async for result in results:
            if result.replay_failure is not None:
                failure = result.replay_failure
                raise RebuildError(f"run {result.history.run_id} does not replay: {failure}") from failure
    convert = pydantic_data_converter.payload_converter.from_payloads
    return [convert(b.payloads, [ProjectionInput])[0] for batches in per_run for b in batches if b.written]


def _writes(inputs: Sequence[ProjectionInput]) -> Iterator[ProjectionInput]:
    """Consecutive batches joined (the state after the last of them), up to ``WRITE_EVENTS``."""
    group: list[ProjectionInput] = []
    for batch in inputs:
        group.append(batch)
        if sum(len(g.events) for g in group) >= WRITE_EVENTS:
            yield ProjectionInput(state=group[-1].state, events=[e for g in group for e in g.events])
            group = []
    if group:
        yield ProjectionInput(state=group[-1].state, events=[e for g in group for e in g.events])


async def rebuild_ticket(client: Client, db: Database, ticket_id: str) -> Rebuilt:
    """Re-project one ticket from its workflow's history; nothing is sent again."""
    chain = await runs(client, ticket_id)
    inputs = await projection_inputs(chain.histories)
    events = [e for batch in inputs for e in batch.events]
    if not events:
        raise RebuildError("its history holds no projection")
    if {e.ticket_id for e in events} | {b.state.ticket_id for b in inputs} != {ticket_id}:
        raise RebuildError("its history projects another ticket")
    first = events[0].seq
    if [e.seq for e in events] != list(range(first, first + len(events))) or (chain.complete and first != 1):
        raise RebuildError(f"the replayed changes are not consecutive from 1: {[e.seq for e in events][:20]}")
    for write in _writes(inputs):
        await tickets.record_changes(db, write.state, write.events, rebuild=True)
    last = inputs[-1].state
    return Rebuilt(ticket_id, len(chain.histories), first, last.seq, last.status.value, not chain.complete)


async def ticket_ids(client: Client, query: str | None = None) -> AsyncIterator[str]:
    """Every ticket with a workflow in Temporal (open or closed, each chain once), by a
    visibility list query; ``query`` narrows it (e.g. ``TicketRegion = "east"``)."""
    q = f'WorkflowType = "{TICKET_WORKFLOW}"' + (f" AND ({query})" if query else "")
    seen: set[str] = set()
    async for execution in client.list_workflows(q):
        if execution.id.startswith(WORKFLOW_PREFIX) and execution.id not in seen:
            seen.add(execution.id)
            yield execution.id.removeprefix(WORKFLOW_PREFIX)


@dataclass
class Summary:
    rebuilt: int = 0
    partial: int = 0
    failed: int = 0

    @property
    def ok(self) -> bool:
        return not (self.partial or self.failed)

    def line(self) -> str:
        total = self.rebuilt + self.partial + self.failed
        counted = f"{self.rebuilt} rebuilt, {self.partial} partial, {self.failed} failed"
        return f"{total} ticket{'s' if total != 1 else ''}: {counted}"


async def rebuild_many(
    client: Client, db: Database, ids: Iterable[str] | AsyncIterator[str], echo: Callable[[str], None]
) -> Summary:
    """Rebuild each ticket in turn, one line each; a ticket that fails does not stop the others."""
    summary = Summary()

    async def each() -> AsyncIterator[str]:
        if isinstance(ids, AsyncIterator):
            async for i in ids:
                yield i
        else:
            for i in ids:
                yield i

    async for ticket_id in each():
        try:
            done = await rebuild_ticket(client, db, ticket_id)
        except Exception as exc:  # noqa: BLE001 - reported on the ticket's line; the next goes on
            summary.failed += 1
            echo(f"{ticket_id}  failed  {type(exc).__name__}: {exc}")
            continue
        if done.partial:
            summary.partial += 1
        else:
            summary.rebuilt += 1
        echo(done.line())
    return summary
