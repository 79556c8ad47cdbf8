"""Record workflow histories for the replay test: ``python -m tests.histories.record``.

Runs each scenario on a real dev server (projection mocked) and writes
``tests/histories/<name>.json``. Re-record only on purpose: a history recorded before a
change is what proves the change keeps running tickets replayable.
"""

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import search_attributes as attrs
from models.ticket import (
    ActorRef,
    AssignInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    Priority,
    ProjectionInput,
    ReopenInput,
    ResolveInput,
    StartInput,
    TicketInput,
)
from tests.support import preset
from workflows.ticket import TicketWorkflow

HERE = Path(__file__).parent
AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
# Re-record after a deliberate, incompatible change to the workflow (only before a release:
# afterwards such a change needs workflow.patched() so running tickets keep replaying).


@activity.defn(name="notify.send")
async def send(payload: dict) -> None:
    pass


@activity.defn(name="projection.record_ticket_changes")
async def record(change: ProjectionInput) -> None:
    pass


async def lifecycle(env: WorkflowEnvironment, queue: str) -> str:
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(),
        ticket_type="general",
        template=preset("general"),
        region="east",
        priority=Priority.HIGH,
        title="Compressor #3 overheating",
        created_by=AGENT,
        created_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    )
    h = await env.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    try:
        await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))  # rejected
    except WorkflowUpdateFailedError:
        pass
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=ENG, text="fan bearing worn"))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="fan replaced"))
    await h.execute_update(TicketWorkflow.reopen, ReopenInput(actor=AGENT, reason="still hot"))
    await h.execute_update(TicketWorkflow.assign, AssignInput(actor=AGENT, assignee="eng-li"))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="sensor replaced"))
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    await h.result()
    return h.id


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.prefix) / "bin" / "temporal"),
        search_attributes=attrs.ALL,
    )
    async with env:
        queue = f"record-{uuid.uuid4().hex[:6]}"
        async with Worker(env.client, task_queue=queue, workflows=[TicketWorkflow], activities=[record, send]):
            wf_id = await lifecycle(env, queue)
        history = await env.client.get_workflow_handle(wf_id).fetch_history()
        (HERE / "ticket_lifecycle.json").write_text(history.to_json())
        print(f"wrote {HERE / 'ticket_lifecycle.json'} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(main())
