"""/tickets/{id}/survey: a ticket's satisfaction survey (docs/surveys.md). Staff of the ticket's
region read it; a channel gateway or an agent answers it for the customer. The customer answers
on the tracking page, which calls ``api/services/surveys.py`` itself."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path

from api.deps import AppSettings, CurrentActor, DbSession, StaffActor, TemporalClient
from api.services import surveys as service
from models.schemas import Problem
from models.surveys import SurveyAnswerBody, SurveyOut

router = APIRouter(prefix="/tickets", tags=["surveys"])
TicketId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    404: {"model": Problem, "description": "No such ticket in the caller's regions, or no survey for it"},
}


@router.get(
    "/{ticket_id}/survey",
    response_model=SurveyOut,
    responses={**ERRORS, 403: {"model": Problem, "description": "A channel account (staff only)"}},
    summary="The ticket's satisfaction survey: status, rating, comment, answers, follow-up",
)
async def get_survey(ticket_id: TicketId, session: DbSession, actor: StaffActor) -> SurveyOut:
    return await service.get_survey(session, actor, ticket_id)


@router.post(
    "/{ticket_id}/survey/answer",
    response_model=SurveyOut,
    responses={
        **ERRORS,
        403: {"model": Problem, "description": "Neither a channel account nor an agent, or the engineer who did it"},
        409: {"model": Problem, "description": "The survey was answered already (one answer per ticket) or expired"},
        504: {"model": Problem, "description": "Not taken in time: send it again"},
    },
    summary="Answer the survey for the customer (a channel account or an agent): rating 1-5, comment, answers",
)
async def answer(
    ticket_id: TicketId,
    body: SurveyAnswerBody,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    actor: CurrentActor,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="Repeating the request with the same key returns its first outcome."),
    ] = None,
) -> SurveyOut:
    return await service.answer_for_customer(session, client, settings, actor, ticket_id, body, idempotency_key)
