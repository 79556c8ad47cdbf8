"""The workflow refuses whoever the API did not vouch for, whoever reaches it (issue #9).

Each attacker here holds a plain Temporal client, as the Temporal UI or a script does: the
updates they forge, tamper with or replay late are refused by the workflow's validators and
leave no history; the ``event`` signal no longer changes anything; declared events are
checked against their senders and fields; what an approval decided on stays decided; a
request id is taken once.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.signing import seal, update_id
from models.directory import PeopleQuery, PeopleResult
from models.template import TemplateVersion
from models.ticket import (
    ActorRef,
    ApproveInput,
    ClaimInput,
    CommentInput,
    CompleteInput,
    EventInput,
    PersonLeft,
    Priority,
    ProjectionInput,
    RejectInput,
    StartInput,
    TicketInput,
    TicketSignal,
    TicketState,
)
from tests.conftest import SIGNING_KEY, SIGNING_KEY_ID
from tests.support import preset
from workflows.ticket import EXPIRED, KEY_REUSED, UNSIGNED, TicketWorkflow

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENGINEER = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
MANAGER = ActorRef(id="mgr-sun", roles=["manager"], regions=["east"])
GATEWAY = ActorRef(id="gateway-qr", roles=["channel"], regions=["*"])
SOUTH_AGENT = ActorRef(id="agent-chen", roles=["agent"], regions=["south"])
FORGED_ADMIN = ActorRef(id="admin", roles=["admin"], regions=["*"])
MONEY = {"amount": "5000", "currency": "CNY"}


class Mocks:
    """Projection and notifications recorded; the directory answers from ``active`` and
    ``managers`` (who manages whom)."""

    def __init__(self) -> None:
        self.active: set[str] = {"eng-li", "eng-zhao"}

        @activity.defn(name="projection.record_ticket_changes")
        async def record(change: ProjectionInput) -> None:
            pass

        @activity.defn(name="notify.send")
        async def send(payload: dict) -> None:
            pass

        @activity.defn(name="directory.is_active")
        async def is_active(person_id: str) -> bool:
            return person_id in self.active

        @activity.defn(name="directory.resolve_people")
        async def resolve_people(query: PeopleQuery) -> PeopleResult:
            return PeopleResult(ids=["mgr-sun"] if query.manager_of else ["fin-qian"])

        self.activities = [record, send, is_active, resolve_people]


@pytest.fixture
async def start(tsenv: WorkflowEnvironment):
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    mocks = Mocks()
    async with Worker(tsenv.client, task_queue=queue, workflows=[TicketWorkflow], activities=mocks.activities):

        async def start(template: TemplateVersion, by: ActorRef = AGENT, **fields) -> WorkflowHandle:
            ticket_id = f"T{uuid.uuid4().hex[:12].upper()}"
            inp = TicketInput(
                ticket_id=ticket_id,
                ticket_type=template.key,
                region="east",
                priority=Priority.NORMAL,
                title="trust",
                created_by=by,
                created_at=datetime.now(UTC),  # SLA clocks run from intake
                template=template,
                fields=fields,
            )
            return await tsenv.client.start_workflow(
                TicketWorkflow.run, inp, id=f"ticket-{ticket_id}", task_queue=queue
            )

        start.mocks = mocks  # type: ignore[attr-defined]
        yield start


async def state(h: WorkflowHandle) -> TicketState:
    return await h.query(TicketWorkflow.get_state)


async def until(h: WorkflowHandle, check, what: str) -> TicketState:
    import asyncio

    for _ in range(400):
        s = await state(h)
        if check(s):
            return s
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


def refusal(err: pytest.ExceptionInfo) -> ApplicationError:
    cause = err.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


def attacker(h: WorkflowHandle, env: WorkflowEnvironment) -> WorkflowHandle:
    """The same ticket through a client that signs nothing (the Temporal UI, a script)."""
    return env.unsigned_client.get_workflow_handle(h.id)  # type: ignore[attr-defined]


def discount() -> TemplateVersion:
    return preset("discount_approval")


async def test_a_forged_approval_from_the_temporal_ui_is_refused_and_leaves_no_history(start, tsenv):
    h = await start(discount(), customer="ACME", amount=MONEY, justification="framework")
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    before = await state(h)
    with pytest.raises(WorkflowUpdateFailedError) as err:  # "as admin", typed into the UI
        await attacker(h, tsenv).execute_update(TicketWorkflow.approve, ApproveInput(actor=FORGED_ADMIN))
    assert refusal(err).type == UNSIGNED
    after = await state(h)
    assert (after.seq, after.status, after.nodes["approve"].votes) == (before.seq, before.status, [])
    accepted = [
        e
        for e in (await h.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert accepted == []  # a refused update is not in the history


async def test_a_signed_request_altered_on_the_way_is_refused(start, tsenv):
    h = await start(discount(), customer="ACME", amount=MONEY, justification="framework")
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    expires = datetime.now(UTC) + timedelta(days=3650)
    sealed = seal(
        ApproveInput(actor=ENGINEER),
        h.id.removeprefix("ticket-"),
        "approve",
        SIGNING_KEY_ID,
        SIGNING_KEY.encode(),
        expires,
    )
    promoted = sealed.model_copy(update={"actor": FORGED_ADMIN})  # the engineer made an admin
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await attacker(h, tsenv).execute_update(TicketWorkflow.approve, promoted, id=update_id("approve", promoted))
    assert refusal(err).type == UNSIGNED
    other_ticket = seal(
        ApproveInput(actor=MANAGER), "TSOMEOTHER", "approve", SIGNING_KEY_ID, SIGNING_KEY.encode(), expires
    )  # a real signature, for another ticket
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await attacker(h, tsenv).execute_update(TicketWorkflow.approve, other_ticket)
    assert refusal(err).type == UNSIGNED
    as_comment = seal(
        CommentInput(actor=MANAGER, text="x"),
        h.id.removeprefix("ticket-"),
        "comment",
        SIGNING_KEY_ID,
        SIGNING_KEY.encode(),
        expires,
    )  # signed for another action
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await attacker(h, tsenv).execute_update(
            TicketWorkflow.reject, RejectInput(**as_comment.model_dump(), reason="x")
        )
    assert refusal(err).type == UNSIGNED
    assert (await state(h)).nodes["approve"].votes == []


async def test_an_action_past_its_expiry_never_applies(start, tsenv):
    """The API gave up (504) before the workflow took it: the workflow refuses it then."""
    h = await start(preset("general"))
    await until(h, lambda s: s.active == ["work"], "task open")
    late = seal(
        CommentInput(actor=AGENT, text="too late"),
        h.id.removeprefix("ticket-"),
        "comment",
        SIGNING_KEY_ID,
        SIGNING_KEY.encode(),
        datetime(2020, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await attacker(h, tsenv).execute_update(TicketWorkflow.comment, late)
    assert refusal(err).type == EXPIRED
    assert (await state(h)).comment_count == 0


async def test_an_actor_of_another_region_is_refused_even_when_signed(start):
    h = await start(preset("general"))
    await until(h, lambda s: s.active == ["work"], "task open")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(TicketWorkflow.comment, CommentInput(actor=SOUTH_AGENT, text="hi"))
    assert refusal(err).type == "NotAllowed"


async def test_the_event_signal_changes_nothing(start, tsenv):
    """The old ``event`` signal stored any field, even a negative amount nobody declared."""
    h = await start(discount(), customer="ACME", amount=MONEY, justification="framework")
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    before = await state(h)
    forged = TicketSignal(
        name="note", actor=FORGED_ADMIN, fields={"amount": {"amount": "-1", "currency": "CNY"}, "evil": 1}
    )
    await attacker(h, tsenv).signal(TicketWorkflow.event, forged)
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="after the signal"))
    after = await state(h)
    assert after.fields == before.fields
    assert after.seq == before.seq + 1  # only the comment


async def test_only_declared_senders_speak_for_the_customer(start):
    repair = preset("equipment_repair")
    h = await start(repair, device_id="CMP-0042", fault="noise")
    with pytest.raises(WorkflowUpdateFailedError) as err:  # an engineer "confirms" for the customer
        await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_confirmed", actor=ENGINEER))
    assert refusal(err).type == "NotAllowed"
    assert (await state(h)).unclaimed_events == []
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_confirmed", actor=GATEWAY))
    assert [e.name for e in (await state(h)).unclaimed_events] == ["customer_confirmed"]


async def test_an_undeclared_event_and_an_undeclared_field_are_refused(start):
    h = await start(discount(), customer="ACME", amount=MONEY, justification="framework")
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(
            TicketWorkflow.send_event,
            EventInput(name="note", actor=AGENT, fields={"amount": {"amount": "9999999", "currency": "CNY"}}),
        )
    assert refusal(err).type == "EventRefused"
    with pytest.raises(WorkflowUpdateFailedError) as err:  # a declared event, but not this field
        await h.execute_update(
            TicketWorkflow.send_event,
            EventInput(name="customer_reply", actor=AGENT, fields={"amount": {"amount": "9999999", "currency": "CNY"}}),
        )
    assert refusal(err).type == "EventRefused"
    assert (await state(h)).fields["amount"] == MONEY


def discount_with_amount_event() -> TemplateVersion:
    """The discount preset plus an event that may set the amount (as an integration might)."""
    spec = discount().spec.model_copy(deep=True)
    spec.events = [
        *(spec.events or []),
        spec.event("customer_reply").model_copy(
            update={"name": "erp_update", "senders": ["role:agent"], "fields": ["amount"]}
        ),
    ]
    return TemplateVersion(key=spec.key, version=1, spec=spec)


async def test_what_an_approval_decides_on_is_frozen_until_it_rejects(start):
    h = await start(discount_with_amount_event(), customer="ACME", amount=MONEY, justification="framework")
    s = await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    assert s.frozen["amount"] == "approve"  # what the approvers decide on (the preset's decides list)
    more = EventInput(name="erp_update", actor=AGENT, fields={"amount": {"amount": "9999999", "currency": "CNY"}})
    with pytest.raises(WorkflowUpdateFailedError) as err:  # while the approval is pending
        await h.execute_update(TicketWorkflow.send_event, more)
    assert refusal(err).type == "FieldFrozen"
    same = EventInput(name="erp_update", actor=AGENT, fields={"amount": MONEY})
    await h.execute_update(TicketWorkflow.send_event, same)  # the same value is no change
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER))
    s = await until(h, lambda s: s.status == "resolved", "approved")
    with pytest.raises(WorkflowUpdateFailedError) as err:  # after it approved (probe: closes at 9,999,999)
        await h.execute_update(TicketWorkflow.send_event, more)
    assert refusal(err).type == "FieldFrozen"
    assert (await state(h)).fields["amount"] == MONEY


async def test_a_rejection_frees_the_fields_for_the_revision(start):
    h = await start(discount_with_amount_event(), customer="ACME", amount=MONEY, justification="framework")
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    await h.execute_update(TicketWorkflow.reject, RejectInput(actor=MANAGER, reason="too much"))
    s = await until(h, lambda s: s.active == ["revise"], "revise")
    assert s.frozen == {}
    lower = {"amount": "4000", "currency": "CNY"}
    await h.execute_update(
        TicketWorkflow.send_event, EventInput(name="erp_update", actor=AGENT, fields={"amount": lower})
    )
    assert (await state(h)).fields["amount"] == lower


async def test_a_request_id_is_taken_once_and_never_for_another_request(start, tsenv):
    h = await start(preset("general"))
    await until(h, lambda s: s.active == ["work"], "task open")
    first = await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="hello"), id="key-1")
    again = await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="hello"), id="key-1")
    assert (first.comment_count, again.comment_count, again.seq) == (1, 1, first.seq)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="another"), id="key-1")
    assert refusal(err).type == KEY_REUSED
    assert (await state(h)).comment_count == 1


async def test_a_departure_of_someone_still_active_is_ignored(start, tsenv):
    h = await start(preset("general"))
    await until(h, lambda s: s.active == ["work"], "task open")
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))
    await attacker(h, tsenv).signal(TicketWorkflow.person_left, PersonLeft(person_id="eng-li"))  # forged
    s = await until(h, lambda s: not s.pending_departures, "departure handled")
    assert s.nodes["work"].assignee == "eng-li"


async def test_whoever_did_the_work_never_confirms_it_for_the_customer(start):
    """Attacker review: an engineer who filed the ticket was its requester, and so could send
    customer_confirmed for their own repair."""
    h = await start(preset("general"), by=ENGINEER)
    await until(h, lambda s: s.active == ["work"], "task open")
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_reply", actor=ENGINEER))  # not yet
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENGINEER))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_reply", actor=ENGINEER))
    assert refusal(err).type == "NotAllowed"


async def test_a_repeated_request_gets_its_first_outcome_even_when_its_check_would_now_refuse(start, tsenv):
    """Attacker review: a request taken before, sent again under another update id (as after a
    continue-as-new), was refused (already voted) instead of answered."""
    h = await start(discount(), customer="ACME", amount=MONEY, justification="framework")
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    expires = datetime.now(UTC) + timedelta(days=3650)
    sealed = seal(
        ApproveInput(actor=MANAGER),
        h.id.removeprefix("ticket-"),
        "approve",
        SIGNING_KEY_ID,
        SIGNING_KEY.encode(),
        expires,
        request_id="vote-1",
    )
    first = await attacker(h, tsenv).execute_update(TicketWorkflow.approve, sealed, id="first")
    again = await attacker(h, tsenv).execute_update(TicketWorkflow.approve, sealed, id="second")
    assert (
        [v.actor_id for v in again.nodes["approve"].votes]
        == ["mgr-sun"]
        == [v.actor_id for v in first.nodes["approve"].votes]
    )


async def test_a_contract_rejected_by_legal_goes_to_legal_again(start):
    """Attacker review: after legal rejected, the revision unticked contract_attached (the file
    stayed), the manager approved again and the gateway skipped legal."""
    contract = {"contract_attached": True, "contract_file": "contracts/acme.pdf"}
    h = await start(discount(), customer="ACME", amount=MONEY, justification="framework", **contract)
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER))
    await until(h, lambda s: s.nodes.get("legal_review") and s.nodes["legal_review"].approvers, "legal")
    legal = ActorRef(id="fin-qian", roles=["legal"], regions=["*"])  # the mocked directory answers fin-qian
    await h.execute_update(TicketWorkflow.reject, RejectInput(actor=legal, reason="clause 7"))
    await until(h, lambda s: s.active == ["revise"], "revise")
    await h.execute_update(TicketWorkflow.start, StartInput(actor=AGENT))
    await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=AGENT, fields={"contract_attached": False}))
    await until(h, lambda s: s.nodes["approve"].approvers and s.active == ["approve"], "approve again")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER))
    s = await until(h, lambda s: "legal_review" in s.active or s.status == "resolved", "legal or end")
    assert "legal_review" in s.active and s.status != "resolved"
