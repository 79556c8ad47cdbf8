"""SurveyWorkflow: the satisfaction survey of one ticket (id ``survey-<ticket_id>``, so one per
ticket: starting it again is refused as already started).

It writes the survey, asks the customer on the channels they consented to (``notify.send``; with
nobody to reach it records why and waits anyway: the tracking page can answer), then waits for
the ``answer`` Update with two durable timers: a reminder once after ``reminder_after``, the
expiry after ``expires_after`` (later answers are refused). A rating at or below ``low_rating``
opens a follow-up ticket for the supervisor (``intake.open_ticket``, idempotent by
``survey-follow-up:<ticket_id>``). The answer is recorded with the ticket's ``satisfaction``.

The run lasts until the expiry even when answered early, so a second answer meets the
validator's refusal (and a repeat of the first, Temporal's first outcome). Answers are signed by
the API like ticket actions (``domain/signing.py``, under the name ``survey.answer``): whoever
reaches this workflow, the validator refuses an unsigned, altered, stale or foreign answer, and
an actor who may not answer (docs/surveys.md).
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import signing
    from domain.access import can_access_region
    from models.intake import OpenedTicket, OpenTicket
    from models.notifications import NotifyInput, NotifyResult, TicketBrief, Urgency
    from models.survey_spec import MAX_COMMENT
    from models.surveys import (
        ANSWER_UPDATE,
        ANSWERING_ROLES,
        CUSTOMER_ROLE,
        SIGNED_AS,
        LinkFollowUp,
        RecordAnswer,
        SendSurvey,
        SurveyAnswerInput,
        SurveyDelivery,
        SurveyInput,
        SurveyMark,
        SurveySent,
        SurveyState,
        SurveyStatus,
        answer_problems,
        customer_actor_id,
        follow_up_key,
    )
    from models.ticket import ActorRef

# Why an answer is refused: ``ApplicationError.type`` (api/services/surveys.py maps each to HTTP).
UNSIGNED = "survey_unsigned"
REQUEST_EXPIRED = "survey_request_expired"
NOT_ALLOWED = "survey_not_allowed"
NOT_READY = "survey_not_ready"
ANSWERED = "survey_answered"
EXPIRED = "survey_expired"
INVALID = "survey_invalid"

FOLLOW_UP_TYPE = "satisfaction_follow_up"
DB_WRITE = timedelta(seconds=30)
# Asking the customer must not hold the survey up for long: a delivery still failing after these
# attempts is recorded on the survey, which waits for the answer all the same.
NOTIFY_RETRY = RetryPolicy(maximum_attempts=8, maximum_interval=timedelta(minutes=5))


def _refuse(type_: str, message: str, field: str | None = None) -> ApplicationError:
    return ApplicationError(message, {"field": field} if field else {}, type=type_, non_retryable=True)


def delivery_of(result: NotifyResult) -> str:
    """How asking went, for the survey's ``delivery``: the channels that took it, or why none did."""
    # "queued": written to the outbox for its channel's lane (e-mail, SMS, IM go out from there).
    took = sorted({d.channel.value for d in result.deliveries if d.status in ("sent", "already_sent", "queued")})
    if took:
        return f"notified: {', '.join(took)}"
    why = "; ".join(f"{d.channel.value} {d.status}" + (f" ({d.error})" if d.error else "") for d in result.deliveries)
    return f"not_sent: {why or 'nothing to send'}"[:200]


@workflow.defn(name="Survey")
class SurveyWorkflow:
    @workflow.init
    def __init__(self, input: SurveyInput) -> None:
        self.input = input
        self.state = SurveyState(ticket_id=input.ticket_id)
        self.sent = False  # the survey's row is written: answers may come
        self.recorded = False  # the answer is written (survey and ticket)

    @workflow.run
    async def run(self, input: SurveyInput) -> SurveyState:
        now = workflow.now()
        self.state.sent_at, self.state.expires_at = now, now + input.expires_after
        sent: SurveySent = await workflow.execute_activity(
            "survey.send",
            SendSurvey(input=input, sent_at=now, expires_at=self.state.expires_at),
            result_type=SurveySent,
            start_to_close_timeout=DB_WRITE,
            summary=f"survey of {input.ticket_id}: written; the customer's consented channels",
        )
        self.state.delivery, self.sent = sent.delivery, True
        if sent.recipients:
            delivery = await self._ask(sent, "survey", sent.invite)
            await workflow.execute_activity(
                "survey.delivered",
                SurveyDelivery(ticket_id=input.ticket_id, delivery=delivery),
                start_to_close_timeout=DB_WRITE,
                summary=delivery,
            )
            self.state.delivery = delivery

        if not await self._answered_within(input.reminder_after, "reminder due") and self._open():
            self.state.reminded_at = workflow.now()
            await workflow.execute_activity(
                "survey.remind",
                SurveyMark(ticket_id=input.ticket_id, at=self.state.reminded_at),
                start_to_close_timeout=DB_WRITE,
                summary="reminded",
            )
            if sent.recipients:
                await self._ask(sent, "survey_reminder", sent.reminder)
        if not await self._answered_within(self._until_expiry(), "survey expires"):
            self.state.status = SurveyStatus.EXPIRED  # from now on, answers are refused
            await workflow.execute_activity(
                "survey.expire",
                SurveyMark(ticket_id=input.ticket_id, at=workflow.now()),
                start_to_close_timeout=DB_WRITE,
                summary="expired unanswered",
            )
        else:
            await workflow.wait_condition(lambda: self.recorded)
            rating = self.state.rating or 0
            if rating <= input.low_rating:
                await self._follow_up(rating)
            if (left := self._until_expiry()) > timedelta(0):  # a second answer meets the refusal till then
                await workflow.sleep(left, summary="answered: the survey stays until its expiry")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    @workflow.query
    def get_state(self) -> SurveyState:
        return self.state

    @workflow.update(name=ANSWER_UPDATE)
    async def answer(self, input: SurveyAnswerInput) -> SurveyState:
        if not self._open():  # another answer came between this one's validator and now
            raise _refuse(ANSWERED, "this ticket's survey was answered already: one answer per ticket")
        info = workflow.current_update_info()
        s = self.state
        s.status, s.rating, s.comment, s.answers = SurveyStatus.ANSWERED, input.rating, input.comment, input.answers
        s.answered_at, s.answered_via, s.answered_by = workflow.now(), input.via, input.actor.id
        await workflow.execute_activity(
            "survey.record_answer",
            RecordAnswer(
                ticket_id=s.ticket_id,
                rating=input.rating,
                comment=input.comment,
                answers=input.answers,
                at=s.answered_at,
                via=input.via,
                by=input.actor.id,
                update_id=info.id if info is not None else "",
            ),
            start_to_close_timeout=DB_WRITE,
            summary=f"rated {input.rating}/5 via {input.via}",
        )
        self.recorded = True
        return s.model_copy(deep=True)

    @answer.validator
    def check_answer(self, input: SurveyAnswerInput) -> None:
        """Before the answer is accepted (a refusal leaves no history): the API signed this very
        answer for this ticket and it is fresh; the actor may answer; the survey is open; the
        rating, comment and answers are sound."""
        proof = input.proof
        if proof is None:
            raise _refuse(UNSIGNED, "unsigned: answers reach surveys through the Ticketflow API")
        payload = input.model_dump(mode="json")
        payload["proof"]["signature"] = ""
        why = signing.verify(proof.key_id, proof.signature, self.input.ticket_id, SIGNED_AS, payload)
        if why is not None:
            raise _refuse(UNSIGNED, why)
        if proof.expires_at < workflow.now():
            raise _refuse(REQUEST_EXPIRED, f"the answer expired at {proof.expires_at.isoformat()}: not taken")
        self._check_actor(input.actor)
        if not self.sent:
            raise _refuse(NOT_READY, "the survey is being sent: answer again in a moment")
        if self.state.status == SurveyStatus.ANSWERED:
            raise _refuse(ANSWERED, "this ticket's survey was answered already: one answer per ticket")
        if not self._open() or self._until_expiry() <= timedelta(0):
            raise _refuse(EXPIRED, f"the survey expired at {self.state.expires_at}: answers are no longer taken")
        if type(input.rating) is not int or not 1 <= input.rating <= 5:
            raise _refuse(INVALID, "rate with a whole number from 1 to 5", "rating")
        if input.comment is not None and len(input.comment) > MAX_COMMENT:
            raise _refuse(INVALID, f"a comment has at most {MAX_COMMENT} characters", "comment")
        if problems := answer_problems(self.input.questions, input.answers):
            question, problem = problems[0]
            raise _refuse(INVALID, problem, f"answers.{question}")

    # --- helpers ---

    def _check_actor(self, actor: ActorRef) -> None:
        """The customer (as the API names them on the tracking page), a channel gateway or an
        agent of the ticket's region speaking for them; never the engineer who did the work."""
        inp = self.input
        if not can_access_region(actor, inp.region):
            raise _refuse(NOT_ALLOWED, f"{actor.id} does not work in region {inp.region}")
        if CUSTOMER_ROLE in actor.roles:
            if actor.id != customer_actor_id(inp.ticket_id, inp.customer_id):
                raise _refuse(NOT_ALLOWED, f"{actor.id} is not this ticket's customer")
            return
        if inp.assignee is not None and actor.id == inp.assignee:
            raise _refuse(NOT_ALLOWED, f"{actor.id} did the work: they do not rate it")
        if not ANSWERING_ROLES.intersection(actor.roles):
            raise _refuse(
                NOT_ALLOWED, f"{actor.id} may not answer: the customer, a channel or an agent answers for them"
            )

    def _open(self) -> bool:
        return self.state.status == SurveyStatus.SENT

    def _until_expiry(self) -> timedelta:
        assert self.state.expires_at is not None
        return self.state.expires_at - workflow.now()

    async def _answered_within(self, timeout: timedelta, summary: str) -> bool:
        """Whether the survey was answered (or ended) within ``timeout`` (a durable timer)."""
        if timeout <= timedelta(0):
            return not self._open()
        try:
            await workflow.wait_condition(lambda: not self._open(), timeout=timeout, timeout_summary=summary)
        except TimeoutError:
            return False
        return True

    async def _ask(self, sent: SurveySent, event: str, text: str) -> str:
        """Ask (or remind) the customer through the notification outbox; how it went."""
        inp = self.input
        request = NotifyInput(
            dedup_key=f"{inp.ticket_id}:survey:{event}",
            event=event,
            urgency=Urgency.NORMAL,
            ticket=TicketBrief(id=inp.ticket_id, title=inp.title, region=inp.region, link=inp.link),
            recipients=sent.recipients,
            text=text,
        )
        try:
            result: NotifyResult = await workflow.execute_activity(
                "notify.send",
                request,
                result_type=NotifyResult,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=NOTIFY_RETRY,
                summary=f"{event} to the customer",
            )
        except ActivityError as err:
            workflow.logger.warning("survey %s: could not send the %s: %s", inp.ticket_id, event, err.cause)
            return f"not_sent: {err.cause}"[:200]
        return delivery_of(result)

    async def _follow_up(self, rating: int) -> None:
        """A low rating: a call-back ticket for the region's supervisors, once per ticket."""
        inp, s = self.input, self.state
        fields: dict[str, object] = {"source_ticket": inp.ticket_id, "rating": rating}
        if s.comment:
            fields["comment"] = s.comment
        if inp.assignee:
            fields["engineer"] = inp.assignee
        opened: OpenedTicket = await workflow.execute_activity(
            "intake.open_ticket",
            OpenTicket(
                key=follow_up_key(inp.ticket_id),
                ticket_type=FOLLOW_UP_TYPE,
                region=inp.region,
                title=f"Call back: rated {rating}/5 on {inp.ticket_id}",
                description=s.comment or "",
                channel="system",
                fields=fields,
                customer_id=inp.customer_id,
            ),
            result_type=OpenedTicket,
            start_to_close_timeout=timedelta(minutes=1),
            summary=f"rated {rating}/5: a call-back ticket for the supervisor",
        )
        await workflow.execute_activity(
            "survey.link_follow_up",
            LinkFollowUp(ticket_id=inp.ticket_id, follow_up_ticket=opened.ticket_id),
            start_to_close_timeout=DB_WRITE,
            summary=f"follow-up {opened.ticket_id}",
        )
        s.follow_up_ticket = opened.ticket_id
