"""SurveyWorkflow on the time-skipping server: the reminder after a day and the expiry after three
as durable timers, an answer recorded on the survey and the ticket, a low rating opening the
supervisor's follow-up, and every answer the workflow must refuse (a second one, a rating of 6,
unsigned, tampered, stale, from someone who may not answer) — refused before it is accepted.

The survey's own activities run for real against the ``db`` fixture's database. ``notify.send``
and ``intake.open_ticket`` are re-declared under their names and record what they were asked
(tests/activities/test_notify.py and helper R's tests cover them), as DESIGN.md's test style says.
"""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities import surveys as survey_activities
from api.signing import seal, update_id
from models.customer_tables import Customer, CustomerIdentity
from models.db import Database
from models.intake import OpenedTicket, OpenTicket
from models.notifications import Channel, DeliveryOutcome, NotifyInput, NotifyResult
from models.survey_spec import QuestionKind, SurveyQuestion, SurveySpec
from models.survey_tables import Survey
from models.surveys import (
    ANSWER_UPDATE,
    SIGNED_AS,
    SurveyAnswerInput,
    SurveyInput,
    SurveyState,
    SurveyStatus,
    customer_actor_id,
    workflow_id,
)
from models.tables import Ticket
from models.ticket import ActorRef
from tests.conftest import SIGNING_KEY, SIGNING_KEY_ID
from tests.support import preset
from workflows import survey as flow
from workflows.survey import SurveyWorkflow

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
GATEWAY = ActorRef(id="gateway-qr", roles=["channel"], regions=["*"])
ENGINEER = ActorRef(id="eng-li", roles=["engineer", "agent"], regions=["east"])  # did the work
OTHER_ENGINEER = ActorRef(id="eng-zhao", roles=["engineer"], regions=["east"])
SUPERVISOR = ActorRef(id="sup-zhou", roles=["supervisor"], regions=["east"])
SOUTH_AGENT = ActorRef(id="agent-chen", roles=["agent"], regions=["south"])
QUESTIONS = [
    SurveyQuestion(id="on_time", text="Did the engineer arrive on time?", kind=QuestionKind.YES_NO),
    SurveyQuestion(
        id="again", text="Would you call us again?", kind=QuestionKind.CHOICE, options=["yes", "maybe", "no"]
    ),
]
FAR = datetime.now(UTC) + timedelta(days=3650)  # the time-skipping clock runs days ahead


class Recorded:
    """What the re-declared ``notify.send`` and ``intake.open_ticket`` were asked."""

    def __init__(self) -> None:
        self.notified: list[NotifyInput] = []
        self.opened: list[OpenTicket] = []

        @activity.defn(name="notify.send")
        async def notify(req: NotifyInput) -> NotifyResult:
            self.notified.append(req)
            sent = [DeliveryOutcome(channel=Channel.SMS, recipient=r, status="sent") for r in req.recipients]
            return NotifyResult(dedup_key=req.dedup_key, channels=[Channel.SMS], deliveries=sent, sent=len(sent))

        @activity.defn(name="intake.open_ticket")
        async def open_ticket(req: OpenTicket) -> OpenedTicket:
            self.opened.append(req)
            return OpenedTicket(ticket_id=f"K{len(self.opened)}FOLLOWUP", new=True)

        self.activities = [notify, open_ticket]

    def events(self, ticket_id: str) -> list[str]:
        return [n.event for n in self.notified if n.ticket.id == ticket_id]


class Surveys:
    def __init__(self, ts: WorkflowEnvironment, db: Database, queue: str, recorded: Recorded) -> None:
        self.ts, self.db, self.queue, self.recorded = ts, db, queue, recorded

    async def ticket(self, *, consent: dict[str, bool] | None = None, phone: bool = True) -> tuple[str, str]:
        """A resolved ticket of a customer in east: (ticket id, customer id)."""
        suffix = uuid.uuid4().hex[:10].upper()
        ticket_id, customer_id, now = f"SV{suffix}", f"cus_sv{suffix.lower()}", datetime.now(UTC)
        async with self.db.session() as s:
            s.add(Customer(
                id=customer_id, name="Survey customer", region="east", referral_code=f"SV{suffix}",
                consent=consent or {}, language="en", created_at=now, updated_at=now,
            ))  # fmt: skip
            await s.flush()
            if phone:
                s.add(CustomerIdentity(
                    customer_id=customer_id, kind="phone", value=f"+86139{int(suffix[:7], 16) % 10**8:08d}",
                    created_at=now,
                ))  # fmt: skip
            s.add(Ticket(
                id=ticket_id, ticket_type="general", region="east", priority="normal", status="resolved",
                assignee="eng-li", title="Compressor #3 overheating", channel="qr", created_by="gateway-qr",
                created_at=now, updated_at=now, customer_id=customer_id, snapshot={},
            ))  # fmt: skip
            await s.commit()
        return ticket_id, customer_id

    async def start(self, ticket_id: str, customer_id: str | None, **overrides: Any) -> WorkflowHandle:
        inp = SurveyInput(
            ticket_id=ticket_id, region="east", ticket_type="general", title="Compressor #3 overheating",
            customer_id=customer_id, assignee="eng-li", channel="qr", questions=QUESTIONS, **overrides,
        )  # fmt: skip
        return await self.ts.client.start_workflow(
            SurveyWorkflow.run,
            inp,
            id=workflow_id(ticket_id),
            task_queue=self.queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )

    async def row(self, ticket_id: str) -> Survey:
        async with self.db.session() as s:
            row = (await s.exec(select(Survey).where(Survey.ticket_id == ticket_id))).first()
        assert row is not None
        return row

    async def satisfaction(self, ticket_id: str) -> int | None:
        async with self.db.session() as s:
            ticket = await s.get(Ticket, ticket_id)
            assert ticket is not None
            return ticket.satisfaction


@pytest.fixture
async def env(tsenv: WorkflowEnvironment, db: Database):
    recorded = Recorded()
    queue = f"tq-survey-{uuid.uuid4().hex[:8]}"
    mine = [
        survey_activities.send,
        survey_activities.delivered,
        survey_activities.remind,
        survey_activities.record_answer,
        survey_activities.expire,
        survey_activities.link_follow_up,
    ]
    async with Worker(
        tsenv.client, task_queue=queue, workflows=[SurveyWorkflow], activities=[*mine, *recorded.activities]
    ):
        yield Surveys(tsenv, db, queue, recorded)


def signed(ticket_id: str, actor: ActorRef = AGENT, request_id: str | None = None, **body: Any) -> SurveyAnswerInput:
    fields = {"rating": 4, "via": f"agent:{actor.id}", **body}
    answer = SurveyAnswerInput(actor=actor, **fields)
    return seal(answer, ticket_id, SIGNED_AS, SIGNING_KEY_ID, SIGNING_KEY.encode(), FAR, request_id)  # type: ignore[return-value]


async def send(h: WorkflowHandle, answer: SurveyAnswerInput) -> SurveyState:
    return await h.execute_update(ANSWER_UPDATE, answer, id=update_id(ANSWER_UPDATE, answer), result_type=SurveyState)


def refusal(err: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> ApplicationError:
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


async def until(h: WorkflowHandle, check: Any, tries: int = 200) -> SurveyState:
    for _ in range(tries):
        s = await h.query(SurveyWorkflow.get_state)
        if check(s):
            return s
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def accepted_updates(h: WorkflowHandle) -> int:
    events = (await h.fetch_history()).events
    return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED for e in events)


async def replays(h: WorkflowHandle) -> None:
    """The recorded history replays against today's code (no non-determinism)."""
    history = await h.fetch_history()
    replayer = Replayer(workflows=[SurveyWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


# --- the timers ---


async def test_unanswered_the_customer_is_reminded_once_after_a_day_and_the_survey_expires_after_three(env):
    ticket_id, customer_id = await env.ticket(consent={"sms": True, "email": True})  # email consent, no address
    h = await env.start(ticket_id, customer_id)
    await until(h, lambda s: s.delivery.startswith("notified"))
    row = await env.row(ticket_id)
    assert (row.status, row.delivery, row.team, row.language) == ("sent", "notified: sms", "field-service", "en")
    invite = env.recorded.notified[0]
    assert env.recorded.events(ticket_id) == ["survey"] and invite.recipients[0].startswith("tel:+86139")
    assert "How did we do?" in (invite.text or "")  # in the customer's language

    await env.ts.sleep(timedelta(hours=23))
    assert env.recorded.events(ticket_id) == ["survey"]  # not yet
    await env.ts.sleep(timedelta(hours=2))
    await until(h, lambda s: s.reminded_at is not None)
    for _ in range(100):  # the reminder's notification follows the reminder's mark
        if env.recorded.events(ticket_id) == ["survey", "survey_reminder"]:
            break
        await asyncio.sleep(0.05)
    assert env.recorded.events(ticket_id) == ["survey", "survey_reminder"]
    reminder = env.recorded.notified[-1]
    assert reminder.dedup_key == f"{ticket_id}:survey:survey_reminder" and "reminder" in (reminder.text or "")

    result: SurveyState = await h.result()  # skips to the expiry
    assert result.status == SurveyStatus.EXPIRED and result.rating is None
    assert result.expires_at - result.sent_at == timedelta(days=3)  # type: ignore[operator]
    assert result.reminded_at - result.sent_at >= timedelta(days=1)  # type: ignore[operator]
    assert env.recorded.events(ticket_id) == ["survey", "survey_reminder"]  # reminded once
    row = await env.row(ticket_id)
    assert row.status == "expired" and row.reminded_at is not None and row.rating is None
    assert await env.satisfaction(ticket_id) is None
    assert env.recorded.opened == []

    with pytest.raises((WorkflowUpdateFailedError, RPCError)):  # later answers are refused: the survey is over
        await send(h, signed(ticket_id))
    assert (await env.row(ticket_id)).status == "expired"
    await replays(h)


async def test_a_survey_is_started_once_per_ticket(env):
    ticket_id, customer_id = await env.ticket()
    await env.start(ticket_id, customer_id)
    with pytest.raises(WorkflowAlreadyStartedError):
        await env.start(ticket_id, customer_id)


# --- answers ---


async def test_an_answer_before_the_expiry_is_recorded_on_the_survey_and_the_ticket(env):
    ticket_id, customer_id = await env.ticket(consent={"wechat": True})  # no channel the outbox reaches
    h = await env.start(ticket_id, customer_id)
    s = await until(h, lambda s: s.delivery != "")
    assert s.delivery == "not_sent: no consented channel" and env.recorded.events(ticket_id) == []
    await env.ts.sleep(timedelta(hours=20))

    answer = signed(ticket_id, rating=4, comment="Fixed quickly", answers={"on_time": True, "again": "yes"})
    s = await send(h, answer)
    assert (s.status, s.rating, s.comment, s.answered_by) == (SurveyStatus.ANSWERED, 4, "Fixed quickly", "agent-wang")
    row = await env.row(ticket_id)
    assert (row.status, row.rating, row.comment, row.answers) == ("answered", 4, "Fixed quickly", s.answers)
    assert row.answered_via == "agent:agent-wang" and row.answer_update_id == update_id(ANSWER_UPDATE, answer)
    assert await env.satisfaction(ticket_id) == 4

    # The same request again (a retried call): its first outcome, not a second answer.
    again = await send(h, answer)
    assert again.answered_at == s.answered_at and await accepted_updates(h) == 1

    result: SurveyState = await h.result()
    assert result.status == SurveyStatus.ANSWERED and result.reminded_at is None  # answered before the reminder
    assert env.recorded.opened == [] and result.follow_up_ticket is None  # 4 is not a low rating
    await replays(h)


async def test_a_low_rating_opens_the_supervisors_follow_up_once(env):
    ticket_id, customer_id = await env.ticket(consent={"sms": True})
    h = await env.start(ticket_id, customer_id)
    await until(h, lambda s: s.delivery.startswith("notified"))
    s = await send(h, signed(ticket_id, GATEWAY, rating=2, comment="Came twice, still noisy", via="channel:gateway-qr"))
    assert s.rating == 2
    s = await until(h, lambda s: s.follow_up_ticket is not None)
    [opened] = env.recorded.opened
    assert opened.key == f"survey-follow-up:{ticket_id}" and opened.ticket_type == "satisfaction_follow_up"
    assert (opened.region, opened.channel, opened.customer_id) == ("east", "system", customer_id)
    assert opened.fields == {
        "source_ticket": ticket_id,
        "rating": 2,
        "comment": "Came twice, still noisy",
        "engineer": "eng-li",
    }
    assert (await env.row(ticket_id)).follow_up_ticket == s.follow_up_ticket == "K1FOLLOWUP"
    assert await env.satisfaction(ticket_id) == 2

    # The follow-up's template: a call-back task for the region's supervisors, with its own SLA.
    spec = preset("satisfaction_follow_up").spec
    task = spec.node(spec.start)
    assert task.assignee.role == "supervisor" and spec.channels == ["system"]
    assert (task.sla.response, task.sla.resolution) == (timedelta(hours=1), timedelta(hours=4))
    assert set(task.form) == {"outcome", "notes"} and task.required == ["outcome"]
    assert set(opened.fields) <= {f.name for f in spec.fields}

    result: SurveyState = await h.result()
    assert result.status == SurveyStatus.ANSWERED and len(env.recorded.opened) == 1
    await replays(h)


async def test_a_second_answer_and_a_rating_of_6_are_refused_before_they_are_accepted(env):
    ticket_id, customer_id = await env.ticket()
    h = await env.start(ticket_id, customer_id)
    await until(h, lambda s: s.delivery != "")

    six = SurveyAnswerInput.model_construct(actor=AGENT, rating=6, comment=None, answers={}, via="agent:agent-wang")
    sealed_six = seal(six, ticket_id, SIGNED_AS, SIGNING_KEY_ID, SIGNING_KEY.encode(), FAR)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await h.execute_update(ANSWER_UPDATE, sealed_six, result_type=SurveyState)
    assert "decoding" in str(err.value.cause)  # the input model bounds the rating: 6 is not an answer
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await send(h, signed(ticket_id, answers={"colour": "blue"}))
    assert refusal(err).type == flow.INVALID and refusal(err).details[0]["field"] == "answers.colour"
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await send(h, signed(ticket_id, answers={"again": "perhaps"}))
    assert refusal(err).type == flow.INVALID and "yes, maybe, no" in str(refusal(err))
    assert await accepted_updates(h) == 0

    await send(h, signed(ticket_id, rating=5))
    with pytest.raises(WorkflowUpdateFailedError) as err:  # another request: one answer per ticket
        await send(h, signed(ticket_id, rating=1))
    assert refusal(err).type == flow.ANSWERED
    assert (await env.row(ticket_id)).rating == 5 and await env.satisfaction(ticket_id) == 5
    assert await accepted_updates(h) == 1


async def test_only_a_signed_answer_from_someone_who_may_answer_is_taken(env):
    ticket_id, customer_id = await env.ticket()
    other_ticket, _ = await env.ticket()
    h = await env.start(ticket_id, customer_id)
    await until(h, lambda s: s.delivery != "")

    async def refused(answer: SurveyAnswerInput, expected: str) -> None:
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await h.execute_update(ANSWER_UPDATE, answer, result_type=SurveyState)
        assert refusal(err).type == expected, refusal(err)

    await refused(SurveyAnswerInput(actor=AGENT, rating=5, via="agent:agent-wang"), flow.UNSIGNED)
    await refused(signed(other_ticket), flow.UNSIGNED)  # signed for another ticket's survey
    tampered = signed(ticket_id, rating=1).model_copy(update={"rating": 5})
    await refused(tampered, flow.UNSIGNED)
    promoted = signed(ticket_id, OTHER_ENGINEER).model_copy(update={"actor": AGENT})
    await refused(promoted, flow.UNSIGNED)
    stale = seal(
        SurveyAnswerInput(actor=AGENT, rating=5, via="agent:agent-wang"),
        ticket_id, SIGNED_AS, SIGNING_KEY_ID, SIGNING_KEY.encode(), datetime.now(UTC) - timedelta(seconds=1),
    )  # fmt: skip
    await refused(stale, flow.REQUEST_EXPIRED)  # type: ignore[arg-type]
    await refused(signed(ticket_id, ENGINEER, via="agent:eng-li"), flow.NOT_ALLOWED)  # rates their own work
    await refused(signed(ticket_id, OTHER_ENGINEER), flow.NOT_ALLOWED)
    await refused(signed(ticket_id, SUPERVISOR), flow.NOT_ALLOWED)
    await refused(signed(ticket_id, SOUTH_AGENT), flow.NOT_ALLOWED)
    impostor = ActorRef(id=customer_actor_id(other_ticket, None), roles=["customer"], regions=["east"])
    await refused(signed(ticket_id, impostor, via="tracking"), flow.NOT_ALLOWED)
    assert await accepted_updates(h) == 0 and (await env.row(ticket_id)).status == "sent"

    customer = ActorRef(id=customer_actor_id(ticket_id, customer_id), roles=["customer"], regions=["east"])
    s = await send(h, signed(ticket_id, customer, rating=3, via="tracking"))
    assert (s.status, s.answered_via, s.answered_by) == (SurveyStatus.ANSWERED, "tracking", customer.id)


# --- what a template declares ---


@pytest.mark.parametrize(
    "block",
    [
        {"reminder_after": "P3D", "expires_after": "P1D"},  # the reminder after the expiry
        {"reminder_after": "PT0S"},
        {"expires_after": "P91D"},
        {"low_rating": 5},  # every rating would be low
        {"questions": [{"id": "a", "text": "A?"}, {"id": "a", "text": "A again?"}]},
        {"questions": [{"id": "a", "text": "Which?", "kind": "choice"}]},  # a choice without options
        {"questions": [{"id": "a", "text": "Yes?", "kind": "yes_no", "options": ["y", "n"]}]},
        {"questions": [{"id": f"q{i}", "text": "?"} for i in range(11)]},
        {"after": "assigned"},
        {"remind": "P1D"},  # no such key
    ],
)
def test_a_templates_survey_block_is_checked_when_it_is_saved(block):
    with pytest.raises(ValueError):
        SurveySpec.model_validate(block)


def test_a_templates_survey_block_becomes_the_workflows_input():
    spec = SurveySpec.model_validate({"after": "closed", "questions": [q.model_dump() for q in QUESTIONS]})
    inp = SurveyInput.of(spec, ticket_id="T1", region="east", ticket_type="general", customer_id="cus_1")
    assert (inp.reminder_after, inp.expires_after, inp.low_rating) == (timedelta(days=1), timedelta(days=3), 2)
    assert (inp.follow_up_sla.response, inp.follow_up_sla.resolution) == (timedelta(hours=1), timedelta(hours=4))
    assert inp.questions == QUESTIONS and inp.team is None and inp.language is None


def test_an_invitation_queued_for_its_channel_counts_as_sent():
    """notify.send queues e-mail/SMS/IM for their delivery lanes (it never waits for them): the
    survey says it notified, not that nothing was sent."""
    queued = DeliveryOutcome(channel=Channel.SMS, recipient="+8613800000000", status="queued")
    skipped = DeliveryOutcome(channel=Channel.EMAIL, recipient="-", status="skipped", error="no address")
    result = NotifyResult(dedup_key="k", channels=[Channel.SMS], deliveries=[queued, skipped], queued=1, skipped=1)
    assert flow.delivery_of(result) == "notified: sms"
    gave_up = DeliveryOutcome(channel=Channel.SMS, recipient="+8613800000000", status="failed", error="bad number")
    assert flow.delivery_of(result.model_copy(update={"deliveries": [gave_up]})).startswith("not_sent: sms failed")
