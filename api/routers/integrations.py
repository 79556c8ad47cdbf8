"""/integrations: business-system sources, their mapping rules, and their signed events."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from api.bounds import VersionQuery
from api.deps import AppSettings, CurrentActor, DbSession, StaffActor, TemporalClient
from api.services import integration_events
from api.services import integrations as service
from models.integrations import SOURCE_CODE, EventIn, EventResult, MappingSpec, MappingVersion, SourceOut, SourceUpsert
from models.schemas import Problem

router = APIRouter(prefix="/integrations", tags=["integrations"])
SourceCode = Annotated[str, Path(pattern=SOURCE_CODE, description="The source's code, e.g. erp")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem},
    404: {"model": Problem, "description": "No such source or mapping"},
}


@router.put(
    "/{source}",
    response_model=SourceOut,
    responses={201: {"model": SourceOut, "description": "Registered: the secret is shown this once"}, **ERRORS},
)
async def register_source(
    source: SourceCode, body: SourceUpsert, response: Response, session: DbSession, actor: CurrentActor
) -> SourceOut:
    """Register a source (201, with its new secret) or change it (200; with ``rotate_secret``, the
    new secret). Admins of every region."""
    out, created = await service.register_source(session, actor, source, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return out


@router.put(
    "/{source}/mapping",
    response_model=MappingVersion,
    status_code=201,
    responses={200: {"model": MappingVersion, "description": "The same rules as the latest: no new version"}, **ERRORS},
)
async def publish_mapping(
    source: SourceCode, spec: MappingSpec, response: Response, session: DbSession, actor: CurrentActor
) -> MappingVersion:
    """Check the rules (422 naming each problem) and publish them as the next version."""
    version, new = await service.publish_mapping(session, actor, source, spec)
    if not new:
        response.status_code = status.HTTP_200_OK
    return version


@router.get("/{source}/mapping", response_model=MappingVersion, responses=ERRORS)
async def get_mapping(
    source: SourceCode, session: DbSession, actor: StaffActor, version: VersionQuery = None
) -> MappingVersion:
    return await service.get_mapping(session, source, version)


@router.post(
    "/{source}/events",
    response_model=EventResult,
    status_code=200,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": EventIn.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        },
        "parameters": [
            {"name": "X-Ticketflow-Timestamp", "in": "header", "required": True, "schema": {"type": "string"}},
            {"name": "X-Ticketflow-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
        ],
    },
    responses={
        201: {"model": EventResult, "description": "A ticket was raised"},
        202: {"model": EventResult, "description": "No rule matched: ignored (recorded)"},
        401: {"model": Problem, "description": "Unknown or inactive source, bad signature or stale timestamp"},
        403: {"model": Problem, "description": "The source's machine account is inactive"},
        413: {"model": Problem, "description": "The event is larger than 64 KiB"},
        503: {"model": Problem, "description": "The ticket could not be started now: send the event again"},
    },
)
async def receive_event(
    source: SourceCode,
    request: Request,
    response: Response,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
) -> EventResult:
    """A signed event (``X-Ticketflow-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``,
    docs/integrations.md): 201 created, 200 added / reopened / a repeat of an event id, 202
    ignored, 422 when the rule cannot make a ticket of it (naming the event's fields)."""
    received = await integration_events.receive(
        session, client, settings, source, request.headers, await request.body()
    )
    response.status_code = received.status_code
    return received.result
