"""Record workflow histories for the replay test: ``python -m tests.histories.record``.

Runs each scenario on a real dev server (projection mocked) and writes
``tests/histories/<name>.json``. Re-record only on purpose: a history recorded before a
change is what proves the change keeps running tickets replayable (``ticket_lifecycle`` was
recorded before actions were signed: it shows tickets of that release still replay).
``python -m tests.histories.record signed_discount`` records one scenario.
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

from api.signing import signing_client
from domain import signing
from models import search_attributes as attrs
from models.directory import PeopleQuery, PeopleResult
from models.ticket import (
    ActorRef,
    ApproveInput,
    AssignInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    EventInput,
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


@activity.defn(name="directory.resolve_people")
async def resolve_people(query: PeopleQuery) -> PeopleResult:
    return PeopleResult(ids=["mgr-sun"])


MANAGER = ActorRef(id="mgr-sun", roles=["manager"], regions=["east"])


async def signed_discount(env: WorkflowEnvironment, queue: str) -> str:
    """Signed actions and a declared event: a discount approved by the requester's manager
    (the amount frozen from then on), a refused rewrite of it, a customer reply, close."""
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(),
        ticket_type="discount_approval",
        template=preset("discount_approval"),
        region="east",
        priority=Priority.NORMAL,
        title="Framework discount",
        created_by=AGENT,
        created_at=datetime(2026, 12, 4, 9, 0, tzinfo=UTC),
        fields={"customer": "ACME", "amount": {"amount": "5000", "currency": "CNY"}, "justification": "3-year order"},
    )
    h = await env.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)
    while not (await h.query(TicketWorkflow.get_state)).nodes.get("approve", None):
        await asyncio.sleep(0.05)
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="urgent"), id="c-1")
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="urgent"), id="c-1")  # a repeat
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER, reason="good customer"))
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_reply", actor=AGENT, text="thanks"))
    while (await h.query(TicketWorkflow.get_state)).status != "resolved":
        await asyncio.sleep(0.05)
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    await h.result()
    return h.id


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


SCENARIOS = {"ticket_lifecycle": lifecycle, "signed_discount": signed_discount}


async def main(names: list[str]) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.prefix) / "bin" / "temporal"),
        search_attributes=attrs.ALL,
    )
    key = b"history-recording-key-" + uuid.uuid4().hex.encode()
    signing.install_keys({"record": key})
    env._client = signing_client(env.client, "record", key)  # type: ignore[attr-defined]
    async with env:
        for name in names:
            queue = f"record-{uuid.uuid4().hex[:6]}"
            activities = [record, send, resolve_people]
            async with Worker(env.client, task_queue=queue, workflows=[TicketWorkflow], activities=activities):
                wf_id = await SCENARIOS[name](env, queue)
            history = await env.client.get_workflow_handle(wf_id).fetch_history()
            (HERE / f"{name}.json").write_text(history.to_json())
            print(f"wrote {HERE / f'{name}.json'} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or list(SCENARIOS)))
