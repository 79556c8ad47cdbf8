"""/subscriptions: ticket events pushed to a URL, signed (docs/integrations.md). An admin, or
an integration's machine account with its own key; another owner's subscription is a 404."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import AppSettings, CurrentActor, DbSession
from api.services import subscriptions as service
from models.schemas import Problem
from models.subscriptions import DeliveryOut, DeliveryPage, SubscriptionCreate, SubscriptionList, SubscriptionOut

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])
SubscriptionId = Annotated[str, Path(min_length=5, max_length=40, pattern=r"^sub_[0-9a-f]{1,36}$")]
DeliveryId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # an INTEGER column

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "Neither an admin nor a machine account"},
    404: {"model": Problem, "description": "No such subscription (or not the caller's)"},
}


@router.post(
    "",
    response_model=SubscriptionOut,
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, 409: {"model": Problem, "description": "Too many subscriptions"}},
    summary="Subscribe a URL to ticket events; the answer shows the signing secret, once",
)
async def create(
    body: SubscriptionCreate, session: DbSession, actor: CurrentActor, settings: AppSettings
) -> SubscriptionOut:
    return await service.create(session, settings, actor, body)


@router.get("", response_model=SubscriptionList, responses=ERRORS, summary="The caller's subscriptions (admin: all)")
async def list_subscriptions(session: DbSession, actor: CurrentActor) -> SubscriptionList:
    return SubscriptionList(items=await service.listed(session, actor))


@router.get("/{subscription_id}", response_model=SubscriptionOut, responses=ERRORS, summary="One subscription")
async def get_subscription(subscription_id: SubscriptionId, session: DbSession, actor: CurrentActor) -> SubscriptionOut:
    return service.out(await service.visible(session, actor, subscription_id))


@router.delete(
    "/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERRORS,
    summary="Delete a subscription and its delivery log",
)
async def delete_subscription(subscription_id: SubscriptionId, session: DbSession, actor: CurrentActor) -> Response:
    await service.delete(session, actor, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{subscription_id}/resume",
    response_model=SubscriptionOut,
    responses=ERRORS,
    summary="Resume a paused subscription: its waiting deliveries go out, in order",
)
async def resume(subscription_id: SubscriptionId, session: DbSession, actor: CurrentActor) -> SubscriptionOut:
    return await service.resume(session, actor, subscription_id)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveryPage,
    responses=ERRORS,
    summary="The delivery log, newest first: status, attempts, last error, response code",
)
async def deliveries(
    subscription_id: SubscriptionId,
    session: DbSession,
    actor: CurrentActor,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    return await service.deliveries(session, actor, subscription_id, cursor, limit)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    responses={**ERRORS, 409: {"model": Problem, "description": "Still being tried"}},
    summary="Send a delivered or dead delivery again (same event id)",
)
async def redeliver(
    subscription_id: SubscriptionId, delivery_id: DeliveryId, session: DbSession, actor: CurrentActor
) -> DeliveryOut:
    return await service.redeliver(session, actor, subscription_id, delivery_id)
