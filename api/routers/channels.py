"""/channels: what customer channels post (``/channels/{code}/inbound``, signed with the
channel's secret, no API key) and the admin registry of channels. docs/channels.md."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from api import channels as adapters
from api.deps import AppSettings, DbSession, StaffActor, TemporalClient
from api.errors import PayloadTooLarge, ProblemList, validation_problems
from api.services import channel_registry as registry
from api.services import channels as service
from domain.inbound_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER
from models.channels import CODE, ChannelIssued, ChannelOut, ChannelPut, InboundResult, SecretRotation
from models.schemas import Problem

router = APIRouter(prefix="/channels", tags=["channels"])

MAX_INBOUND_BYTES = 64 * 1024  # one customer message: text, a photo's address, a few ids
InboundCode = Annotated[str, Path(min_length=1, max_length=64, description="The channel's code")]
ChannelCode = Annotated[str, Path(pattern=CODE, description="The channel's code (lower case, digits, _ and -)")]

REFUSED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "Unknown or inactive channel, or a missing, wrong or stale signature: one answer for all",
    },
}
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "Not an admin of the channel's regions, or a channel account"},
    404: {"model": Problem, "description": "No such channel in the caller's regions"},
}


@router.post(
    "/{code}/inbound",
    response_model=InboundResult,
    summary="A customer message from a channel (signed with its secret)",
    responses={
        **REFUSED,
        403: {"model": Problem, "description": "The customer or asset is in a region the channel does not serve"},
        409: {"model": Problem, "description": "A confirmation or rejection while nothing awaits one"},
        413: {"model": Problem, "description": f"Body larger than {MAX_INBOUND_BYTES} bytes"},
        422: {"description": "The message is malformed (naming the field), or the ticket refused it"},
    },
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}},
)
async def inbound(
    code: InboundCode,
    request: Request,
    session: DbSession,
    client: TemporalClient,
    settings: AppSettings,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER, max_length=1000)] = None,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER, max_length=20)] = None,
) -> InboundResult:
    """The adapter of the channel reads the body (its format: docs/channels.md); the message
    creates a ticket, answers or confirms one, or adds a photo, by the customer's state. The
    same delivery id again answers the first outcome with ``duplicate: true``."""
    body = await request.body()
    if len(body) > MAX_INBOUND_BYTES:
        raise PayloadTooLarge(f"an inbound message is at most {MAX_INBOUND_BYTES} bytes")
    channel, actor = await registry.authenticate(session, code, timestamp, signature, body)
    adapter = adapters.adapter(channel.adapter)
    if adapter is None:  # a channel whose adapter was removed from the code
        raise registry.refuse(code, f"no adapter {channel.adapter!r}")
    try:
        msg = adapter.parse(body, request.headers)
    except ValidationError as exc:
        raise ProblemList(
            [{**p, "loc": ["body", *p["loc"]]} for p in validation_problems(exc.errors(include_url=False))]
        ) from None
    return await service.receive(session, client, settings, channel, actor, msg)


@router.get(
    "/{code}/inbound",
    response_class=PlainTextResponse,
    summary="The platform's verification handshake (WeChat: echostr back when the signature checks out)",
    responses={200: {"content": {"text/plain": {}}, "description": "The echo"}, **REFUSED},
)
async def handshake(code: InboundCode, request: Request, session: DbSession) -> PlainTextResponse:
    params = {k: v for k, v in request.query_params.items() if len(v) <= 256}
    return PlainTextResponse(await registry.handshake(session, code, params))


# --- the registry (admins) ---


@router.get("", response_model=list[ChannelOut], responses=ADMIN_ERRORS, summary="Channels of the caller's regions")
async def list_channels(session: DbSession, actor: StaffActor) -> list[ChannelOut]:
    return await registry.list_channels(session, actor)


@router.get("/{code}", response_model=ChannelOut, responses=ADMIN_ERRORS, summary="One channel (never its secret)")
async def get_channel(code: ChannelCode, session: DbSession, actor: StaffActor) -> ChannelOut:
    return await registry.get_channel(session, actor, code)


@router.put(
    "/{code}",
    response_model=ChannelIssued | ChannelOut,
    status_code=status.HTTP_200_OK,
    summary="Register a channel (201, its secret shown once) or change its settings (200)",
    responses={
        201: {"model": ChannelIssued, "description": "Created: the secret is in this reply only"},
        **ADMIN_ERRORS,
    },
)
async def put_channel(
    code: ChannelCode, body: ChannelPut, response: Response, session: DbSession, actor: StaffActor
) -> ChannelIssued | ChannelOut:
    out, created = await registry.put_channel(session, actor, code, body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return out


@router.post(
    "/{code}/rotate-secret",
    response_model=ChannelIssued,
    responses=ADMIN_ERRORS,
    summary="A new secret (shown once); the previous one still verifies for the grace period",
)
async def rotate_secret(
    code: ChannelCode, session: DbSession, actor: StaffActor, body: SecretRotation | None = None
) -> ChannelIssued:
    return await registry.rotate_secret(session, actor, code, body or SecretRotation())
