"""Satisfaction surveys: staff read a ticket's survey, a channel gateway or an agent answers it for
the customer, and the tracking page (``pending``, ``answer``) lets the customer answer it.

Reads come from the survey's row (``store/surveys.py``); an answer is the ``answer`` Update of
``SurveyWorkflow`` (``survey-<ticket>``), signed like a ticket action under the name
``survey.answer`` (``api/signing.py`` ``seal``), so the workflow's validator can tell it came
from here. The API checks first (scope, role, open survey, bounds, declared questions: a prompt
4xx naming the field); the workflow checks again for itself, and its refusal maps to HTTP here.
A ticket outside the caller's regions is 404 and Temporal is never asked about it.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.client import WorkflowUpdateStage as Stage
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import store.surveys
import store.tickets
from api.errors import (
    ActionTimedOut,
    Conflict,
    DomainError,
    FieldInvalid,
    Forbidden,
    NotFound,
    ProblemList,
    ServiceUnavailable,
)
from api.signing import seal, update_id
from domain.access import can_access_region
from domain.roles import is_machine
from models.settings import Settings
from models.survey_spec import SurveyQuestion
from models.survey_tables import Survey
from models.surveys import (
    ANSWER_UPDATE,
    ANSWERING_ROLES,
    CUSTOMER_ROLE,
    SIGNED_AS,
    SurveyAnswerBody,
    SurveyAnswerInput,
    SurveyOut,
    SurveyState,
    SurveyStatus,
    SurveyView,
    answer_problems,
    customer_actor_id,
    workflow_id,
)
from models.ticket import ActorRef
from workflows import survey as flow

# --- views ---


def _questions(row: Survey) -> list[SurveyQuestion]:
    return [SurveyQuestion.model_validate(q) for q in row.questions]


def _view(row: Survey) -> SurveyView:
    return SurveyView(
        ticket_id=row.ticket_id,
        status=SurveyStatus(row.status),
        questions=_questions(row),
        expires_at=row.expires_at,
        rating=row.rating,
        comment=row.comment,
        answers=dict(row.answers),
        answered_at=row.answered_at,
    )


def _out(row: Survey) -> SurveyOut:
    return SurveyOut(
        **dict(_view(row)),
        sent_at=row.sent_at,
        reminded_at=row.reminded_at,
        delivery=row.delivery,
        answered_via=row.answered_via,
        engineer=row.engineer,
        team=row.team,
        follow_up_ticket=row.follow_up_ticket,
    )


def _open(row: Survey, now: datetime) -> bool:
    return row.status == SurveyStatus.SENT and now < row.expires_at


async def _survey_of(session: AsyncSession, actor: ActorRef, ticket_id: str) -> Survey:
    """The ticket's survey, if the caller may see the ticket (its region); else 404."""
    ticket = await store.tickets.get(session, ticket_id)
    if ticket is None or not can_access_region(actor, ticket.region):
        raise NotFound(f"ticket {ticket_id} not found")
    row = await store.surveys.get(session, ticket_id)
    if row is None:
        raise NotFound(f"ticket {ticket_id} has no survey (yet)")
    return row


# --- staff and channels ---


async def get_survey(session: AsyncSession, actor: ActorRef, ticket_id: str) -> SurveyOut:
    return _out(await _survey_of(session, actor, ticket_id))


async def answer_for_customer(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    actor: ActorRef,
    ticket_id: str,
    body: SurveyAnswerBody,
    idempotency_key: str | None,
) -> SurveyOut:
    """A channel gateway or an agent answers for the customer (by phone, in a chat…)."""
    row = await _survey_of(session, actor, ticket_id)
    if not ANSWERING_ROLES.intersection(actor.roles):
        raise Forbidden(f"{actor.id!r} may not answer surveys: a channel account or an agent answers for the customer")
    if row.engineer == actor.id:
        raise Forbidden(f"{actor.id!r} did the work on {ticket_id}: they do not rate it")
    via = f"channel:{actor.id}" if is_machine(actor.roles) else f"agent:{actor.id}"
    request_id = f"{actor.id}:{idempotency_key}" if idempotency_key else None
    return _out(await _send(session, client, settings, row, actor, body, via, request_id))


# --- the tracking page (helper T's routes call these) ---


async def pending(session: AsyncSession, ticket_id: str) -> SurveyView | None:
    """The ticket's survey while it waits for an answer; None when there is none to answer."""
    row = await store.surveys.get(session, ticket_id, fresh=True)
    return _view(row) if row is not None and _open(row, datetime.now(UTC)) else None


async def answer(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    ticket_id: str,
    rating: Any,
    comment: Any,
    answers: Any,
    via: str,
) -> SurveyView:
    """The customer answers on the tracking page (the caller verified the page's token for
    ``ticket_id``). Bad input is a 422 naming the field; an answered or expired survey a 409."""
    try:
        body = SurveyAnswerBody.model_validate({"rating": rating, "comment": comment, "answers": answers or {}})
    except ValidationError as exc:
        raise ProblemList(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None
    row = await store.surveys.get(session, ticket_id)
    if row is None:
        raise NotFound(f"ticket {ticket_id} has no survey")
    customer = ActorRef(
        id=customer_actor_id(ticket_id, row.customer_id), name="customer", roles=[CUSTOMER_ROLE], regions=[row.region]
    )
    return _view(await _send(session, client, settings, row, customer, body, via, None))


# --- sending the Update ---


async def _send(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    row: Survey,
    actor: ActorRef,
    body: SurveyAnswerBody,
    via: str,
    request_id: str | None,
) -> Survey:
    """Sign the answer, send it, map a refusal; the survey's row once the answer is recorded."""
    if problems := answer_problems(_questions(row), body.answers):
        raise ProblemList([{"loc": ["body", "answers", q], "msg": m, "type": "not_answerable"} for q, m in problems])
    timeout = settings.action_timeout_s
    key_id, keys = settings.signing_keys()
    unsigned = SurveyAnswerInput(actor=actor, rating=body.rating, comment=body.comment, answers=body.answers, via=via)
    expires = datetime.now(UTC) + timedelta(seconds=timeout * 0.8)
    sealed = seal(unsigned, row.ticket_id, SIGNED_AS, key_id, keys[key_id], expires, request_id)
    uid = update_id(ANSWER_UPDATE, sealed)
    if row.answer_update_id == uid:
        return row  # this very request was answered before: its outcome
    _check_open(row)
    handle = client.get_workflow_handle(workflow_id(row.ticket_id))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        accepted = await asyncio.wait_for(
            handle.start_update(ANSWER_UPDATE, sealed, id=uid, wait_for_stage=Stage.ACCEPTED, result_type=SurveyState),
            max(deadline - loop.time(), 0.01),
        )
        await asyncio.wait_for(accepted.result(), max(deadline - loop.time(), 0.01))
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
        raise ActionTimedOut(f"the answer was not taken within {timeout:g}s: send it again") from exc
    except WorkflowUpdateFailedError as exc:
        raise _refusal(exc) from exc
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise ServiceUnavailable(f"Temporal did not take the answer: {exc.message}") from exc
        # The survey's run has ended (answered or expired): the row says which.
        ended = await store.surveys.get(session, row.ticket_id, fresh=True) or row
        if ended.answer_update_id == uid:
            return ended
        _check_open(ended, ended=True)
        raise ServiceUnavailable("the survey's workflow is not running") from exc
    fresh = await store.surveys.get(session, row.ticket_id, fresh=True)
    assert fresh is not None
    return fresh


def _check_open(row: Survey, ended: bool = False) -> None:
    if row.status == SurveyStatus.ANSWERED:
        raise Conflict(
            f"ticket {row.ticket_id}'s survey was answered already: one answer per ticket", code=flow.ANSWERED
        )
    if ended or row.status == SurveyStatus.EXPIRED or datetime.now(UTC) >= row.expires_at:
        raise Conflict(
            f"ticket {row.ticket_id}'s survey expired at {row.expires_at.isoformat()}: answers are no longer taken",
            code=flow.EXPIRED,
        )


def _refusal(exc: WorkflowUpdateFailedError) -> DomainError:
    """The workflow's refusal as HTTP (the one place it is mapped)."""
    cause = exc.cause
    if not isinstance(cause, ApplicationError):
        return ServiceUnavailable(f"the survey did not take the answer: {exc.cause}")
    info: dict[str, Any] = cause.details[0] if cause.details else {}
    if cause.type == flow.INVALID:
        return FieldInvalid(str(info.get("field") or "rating"), cause.message, "survey_refused")
    if cause.type == flow.NOT_ALLOWED:
        return Forbidden(cause.message)
    if cause.type in (flow.ANSWERED, flow.EXPIRED):
        return Conflict(cause.message, code=cause.type)
    if cause.type == flow.REQUEST_EXPIRED:
        return ActionTimedOut("the answer reached the survey too late and was not taken: send it again")
    if cause.type == flow.NOT_READY:
        return ServiceUnavailable(cause.message)
    # UNSIGNED: the worker does not hold the API's signing key — a deployment fault.
    return ServiceUnavailable(
        f"the survey worker refused the API's signature ({cause.message}): TICKETFLOW_ACTION_SIGNING_KEY must be "
        "the same for the API and the workers"
    )
