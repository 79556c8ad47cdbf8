"""/message-templates: the words of the messages customers receive (docs/customer-messages.md)."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import DbSession, StaffActor
from api.services import message_templates as service
from models.customer_messages import (
    LANGUAGE_PATTERN,
    TICKET_TYPE_PATTERN,
    MessageKind,
    MessageTemplateOut,
    MessageTemplatePut,
)
from models.schemas import Problem

router = APIRouter(prefix="/message-templates", tags=["message templates"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}}
TicketType = Annotated[
    str, Path(pattern=TICKET_TYPE_PATTERN, max_length=64, description='A ticket type (template key), or "*" for any')
]
Language = Annotated[str, Path(pattern=LANGUAGE_PATTERN, max_length=8, description="zh, en, en-GB…")]


@router.put(
    "/{ticket_type}/{kind}/{language}",
    response_model=MessageTemplateOut,
    status_code=200,
    responses={
        201: {"model": MessageTemplateOut},
        422: {"description": "the template's problems, each with its line"},
        **ERRORS,
    },
)
async def put_template(
    ticket_type: TicketType,
    kind: MessageKind,
    language: Language,
    body: MessageTemplatePut,
    response: Response,
    session: DbSession,
    actor: StaffActor,
) -> MessageTemplateOut:
    """Save the words (Jinja2, sandboxed) of one message: 201 when new, 200 when replaced (the
    next version) or unchanged. Only admin and process_admin."""
    out, created = await service.put(session, actor, ticket_type, kind, language, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return out


@router.get("", response_model=list[MessageTemplateOut], responses=ERRORS)
async def list_templates(
    session: DbSession,
    actor: StaffActor,
    ticket_type: Annotated[str | None, Query(pattern=TICKET_TYPE_PATTERN, max_length=64)] = None,
    kind: MessageKind | None = None,
    language: Annotated[str | None, Query(pattern=LANGUAGE_PATTERN, max_length=8)] = None,
) -> list[MessageTemplateOut]:
    return await service.list_all(session, ticket_type, kind, language)
