"""/customers: customer records, their contact identities and identity resolution, merging, the
CSV import and the orders business systems report, scoped by the caller's regions. Staff only
(channel accounts: 403). ``docs/customers.md`` describes the fields and who may do what."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status

from api.bounds import IdPath
from api.deps import DbSession, StaffActor
from api.errors import UnsupportedMediaType
from api.services import customer_import
from api.services import customers as service
from models.customers_http import (
    CustomerCreate,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    IdentityIn,
    IdentityKind,
    ImportResult,
    MergeIn,
    OrderIn,
    OrderOut,
    OrderPage,
)
from models.schemas import Problem

router = APIRouter(prefix="/customers", tags=["customers"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "A channel account, or a role that may not do this"},
    404: {"model": Problem, "description": "No such customer in the caller's regions"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {
        "model": Problem,
        "description": "The record was merged (merged_into names the survivor), an identity is another "
        "customer's (customer_id names them when the caller sees them), or a concurrent change",
    },
}
CustomerId = Annotated[
    str, Path(description='A customer id ("cus_…"); a merged one reads as its survivor', max_length=32)
]
Text = Annotated[str | None, Query(max_length=200)]
CSV_TYPES = ("text/csv", "application/csv")


@router.post(
    "",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a customer with their contact identities",
    responses=WRITE_ERRORS,
)
async def create_customer(body: CustomerCreate, session: DbSession, actor: StaffActor) -> CustomerOut:
    return await service.create(session, actor, body)


@router.get("", response_model=CustomerPage, summary="Search customers of the caller's regions", responses=ERRORS)
async def search_customers(
    session: DbSession,
    actor: StaffActor,
    q: Annotated[str | None, Query(max_length=200, description="The name contains this (any case)")] = None,
    phone: Text = None,
    email: Text = None,
    wechat_openid: Text = None,
    identity: Annotated[
        str | None, Query(max_length=250, description="kind:value, e.g. app_user:u-1001 (normalised, exact)")
    ] = None,
    member_level: Annotated[str | None, Query(max_length=32)] = None,
    region: Annotated[str | None, Query(max_length=32, description="One region of the caller's")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page")] = None,
) -> CustomerPage:
    """By name, then id; merged-away records are not listed (their survivor is)."""
    lookups = [
        (kind, value, kind) for kind, value in (("phone", phone), ("email", email), ("wechat_openid", wechat_openid))
    ]
    if identity is not None:
        kind, _, value = identity.partition(":")
        lookups.append((kind, value, "identity"))
    wanted = [(kind, value, param) for kind, value, param in lookups if value is not None]
    return await service.search(
        session,
        actor,
        q=q,
        identities=wanted,
        member_level=member_level,
        region=region,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/resolve",
    response_model=CustomerOut,
    summary="The customer a contact identity belongs to (following merges)",
    responses=ERRORS,
)
async def resolve_customer(
    session: DbSession,
    actor: StaffActor,
    kind: IdentityKind,
    value: Annotated[str, Query(min_length=1, max_length=200, description="Any spelling: it is normalised")],
) -> CustomerOut:
    return await service.resolve(session, actor, kind, value)


@router.post(
    "/import",
    response_model=ImportResult,
    summary="Import customers from CSV: every row or none",
    responses={
        **ERRORS,
        409: {"model": Problem, "description": "Something the file names was registered meanwhile: nothing imported"},
        413: {"model": Problem, "description": "Larger than the API's body limit, or more rows than an import takes"},
        415: {"model": Problem, "description": "Not sent as text/csv"},
        422: {"description": "Problems by row and column (loc: body, row, column); nothing imported"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "UTF-8 CSV with a header row (docs/customers.md lists the columns)",
        }
    },
)
async def import_customers(request: Request, session: DbSession, actor: StaffActor) -> ImportResult:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise UnsupportedMediaType(f"send the CSV with Content-Type: text/csv (got {media or 'none'!r})")
    return await customer_import.import_csv(session, actor, await request.body())


@router.get("/{customer_id}", response_model=CustomerOut, summary="One customer", responses=ERRORS)
async def get_customer(customer_id: CustomerId, session: DbSession, actor: StaffActor) -> CustomerOut:
    """A merged-away id answers its survivor, with ``merged: true`` and ``requested_id``."""
    return await service.get_customer(session, actor, customer_id)


@router.patch("/{customer_id}", response_model=CustomerOut, summary="Change some fields", responses=WRITE_ERRORS)
async def patch_customer(
    customer_id: CustomerId, body: CustomerPatch, session: DbSession, actor: StaffActor
) -> CustomerOut:
    return await service.patch(session, actor, customer_id, body)


@router.post(
    "/{customer_id}/identities",
    response_model=CustomerOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a contact identity",
    responses={200: {"model": CustomerOut, "description": "The customer already held it"}, **WRITE_ERRORS},
)
async def add_identity(
    customer_id: CustomerId, body: IdentityIn, response: Response, session: DbSession, actor: StaffActor
) -> CustomerOut:
    customer, new = await service.add_identity(session, actor, customer_id, body)
    if not new:
        response.status_code = status.HTTP_200_OK
    return customer


@router.delete(
    "/{customer_id}/identities/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a contact identity",
    responses=WRITE_ERRORS,
)
async def remove_identity(
    customer_id: CustomerId, identity_id: IdPath, session: DbSession, actor: StaffActor
) -> Response:
    await service.remove_identity(session, actor, customer_id, identity_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{customer_id}/merge",
    response_model=CustomerOut,
    summary="Merge another record into this one (both histories stay)",
    responses={
        **WRITE_ERRORS,
        409: {
            "model": Problem,
            "description": "Into itself, or either record already merged (merged_into names where)",
        },
    },
)
async def merge_customers(customer_id: CustomerId, body: MergeIn, session: DbSession, actor: StaffActor) -> CustomerOut:
    return await service.merge(session, actor, customer_id, body.from_)


@router.get(
    "/{customer_id}/orders",
    response_model=OrderPage,
    summary="Orders of the customer and of the records merged into it, newest first",
    responses=ERRORS,
)
async def list_orders(
    customer_id: CustomerId,
    session: DbSession,
    actor: StaffActor,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page")] = None,
) -> OrderPage:
    return await service.orders(session, actor, customer_id, limit, cursor)


@router.post(
    "/{customer_id}/orders",
    response_model=OrderOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record an order a business system reports (again: brought up to date)",
    responses={
        200: {"model": OrderOut, "description": "Known (source, external_ref): the row, updated if the body differs"},
        **WRITE_ERRORS,
    },
)
async def record_order(
    customer_id: CustomerId, body: OrderIn, response: Response, session: DbSession, actor: StaffActor
) -> OrderOut:
    order, new = await service.record_order(session, actor, customer_id, body)
    if not new:
        response.status_code = status.HTTP_200_OK
    return order
