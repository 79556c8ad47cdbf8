"""/assets, /contracts, /sla-tiers, /exchange-rates and /customers/{id}/360: what customers own,
what covers it, the rate table and the customer 360 (docs/assets.md).

Staff only: a channel (machine) account is refused (403) — it reaches assets through ticket
intake (``asset: {qr_code: …}``), never by listing them. An asset or customer outside the
caller's regions answers 404.
"""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import AwareDatetime

from api.deps import DbSession, StaffActor
from api.services import assets as service
from api.services import customer360
from models.assets_http import (
    CODE_PATTERN,
    AssetCreate,
    AssetOut,
    AssetPage,
    AssetPatch,
    ContractCreate,
    ContractOut,
    ContractPage,
    ContractPatch,
    Customer360,
    ExchangeRateIn,
    ExchangeRateOut,
    RepairHistoryPage,
    SlaTierIn,
    SlaTierOut,
)
from models.schemas import Problem

router = APIRouter()

ID_PATTERN = r"^[A-Za-z0-9_-]+$"
AssetId = Annotated[str, Path(min_length=1, max_length=32, pattern=ID_PATTERN)]
ContractId = Annotated[str, Path(min_length=1, max_length=32, pattern=ID_PATTERN)]
CustomerId = Annotated[str, Path(min_length=1, max_length=32, pattern=ID_PATTERN)]
QrCode = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="The code the QR sticker carries")
]
SerialPath = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN)]
TierPath = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or unknown credentials"},
    403: {"model": Problem, "description": "A channel account, or roles that may not do this"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Not found in the caller's regions"},
    **ERRORS,
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": Problem, "description": "The serial or number is taken"}}


# --- assets ---


@router.post(
    "/assets",
    tags=["assets"],
    response_model=AssetOut,
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, **CONFLICT},
    summary="Register an asset (a QR code is generated for it)",
)
async def create_asset(body: AssetCreate, session: DbSession, actor: StaffActor) -> AssetOut:
    return await service.create_asset(session, actor, body)


@router.get("/assets", tags=["assets"], response_model=AssetPage, responses=NOT_FOUND, summary="Assets, newest first")
async def list_assets(
    session: DbSession,
    actor: StaffActor,
    customer_id: Annotated[
        str | None, Query(max_length=32, description="Of this customer (and its merged records)")
    ] = None,
    serial: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=100)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AssetPage:
    return await service.list_assets(session, actor, service.AssetFilter(customer_id, serial, model), limit, cursor)


@router.get(
    "/assets/by-qr/{qr_code}",
    tags=["assets"],
    response_model=AssetOut,
    responses=NOT_FOUND,
    summary="The asset a scanned QR code names",
)
async def asset_by_qr(qr_code: QrCode, session: DbSession, actor: StaffActor) -> AssetOut:
    return await service.asset_by_qr(session, actor, qr_code)


@router.get(
    "/assets/by-serial/{serial}",
    tags=["assets"],
    response_model=AssetOut,
    responses=NOT_FOUND,
    summary="The asset with this serial",
)
async def asset_by_serial(serial: SerialPath, session: DbSession, actor: StaffActor) -> AssetOut:
    return await service.asset_by_serial(session, actor, serial)


@router.get(
    "/assets/{asset_id}",
    tags=["assets"],
    response_model=AssetOut,
    responses=NOT_FOUND,
    summary="One asset with its warranty and contract today",
)
async def get_asset(asset_id: AssetId, session: DbSession, actor: StaffActor) -> AssetOut:
    return await service.get_asset(session, actor, asset_id)


@router.patch(
    "/assets/{asset_id}",
    tags=["assets"],
    response_model=AssetOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Change some fields of an asset",
)
async def patch_asset(asset_id: AssetId, body: AssetPatch, session: DbSession, actor: StaffActor) -> AssetOut:
    return await service.patch_asset(session, actor, asset_id, body)


@router.get(
    "/assets/{asset_id}/tickets",
    tags=["assets"],
    response_model=RepairHistoryPage,
    responses=NOT_FOUND,
    summary="The asset's repair history: its tickets, newest first",
)
async def repair_history(
    asset_id: AssetId, session: DbSession, actor: StaffActor, limit: Limit = 50, cursor: Cursor = None
) -> RepairHistoryPage:
    return await service.repair_history(session, actor, asset_id, limit, cursor)


# --- service contracts ---


@router.post(
    "/contracts",
    tags=["contracts"],
    response_model=ContractOut,
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, **CONFLICT},
    summary="Add a service contract",
)
async def create_contract(body: ContractCreate, session: DbSession, actor: StaffActor) -> ContractOut:
    return await service.create_contract(session, actor, body)


@router.get(
    "/contracts",
    tags=["contracts"],
    response_model=ContractPage,
    responses=NOT_FOUND,
    summary="A customer's, an asset's or a numbered contract(s), newest first",
)
async def list_contracts(
    session: DbSession,
    actor: StaffActor,
    customer_id: Annotated[
        str | None, Query(max_length=32, description="Of this customer (and its merged records)")
    ] = None,
    asset_id: Annotated[
        str | None, Query(max_length=32, description="Covering this asset (naming it, or all the customer's)")
    ] = None,
    number: Annotated[str | None, Query(max_length=64)] = None,
    valid_on: Annotated[date | None, Query(description="Valid on this day")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ContractPage:
    f = service.ContractFilter(customer_id, asset_id, number, valid_on)
    return await service.list_contracts(session, actor, f, limit, cursor)


@router.get("/contracts/{contract_id}", tags=["contracts"], response_model=ContractOut, responses=NOT_FOUND)
async def get_contract(contract_id: ContractId, session: DbSession, actor: StaffActor) -> ContractOut:
    return await service.get_contract(session, actor, contract_id)


@router.patch(
    "/contracts/{contract_id}",
    tags=["contracts"],
    response_model=ContractOut,
    responses=NOT_FOUND,
    summary="Extend a contract's validity or change its coverage or tier",
)
async def patch_contract(
    contract_id: ContractId, body: ContractPatch, session: DbSession, actor: StaffActor
) -> ContractOut:
    return await service.patch_contract(session, actor, contract_id, body)


# --- SLA tiers ---


@router.put(
    "/sla-tiers/{code}",
    tags=["contracts"],
    response_model=SlaTierOut,
    responses={
        200: {"model": SlaTierOut, "description": "Replaced"},
        201: {"model": SlaTierOut, "description": "Created"},
        **ERRORS,
    },
    summary="Create or replace an SLA tier (admin, manager)",
)
async def put_tier(
    code: TierPath, body: SlaTierIn, response: Response, session: DbSession, actor: StaffActor
) -> SlaTierOut:
    tier, created = await service.put_tier(session, actor, code, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return tier


@router.get(
    "/sla-tiers", tags=["contracts"], response_model=list[SlaTierOut], responses=ERRORS, summary="SLA tiers by code"
)
async def list_tiers(session: DbSession, _actor: StaffActor) -> list[SlaTierOut]:
    return await service.list_tiers(session)


# --- exchange rates ---


@router.post(
    "/exchange-rates",
    tags=["settlement"],
    response_model=ExchangeRateOut,
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, 409: {"model": Problem, "description": "A rate of this pair as of this moment exists"}},
    summary="Add a row to the rate table (finance, admin)",
)
async def add_rate(body: ExchangeRateIn, session: DbSession, actor: StaffActor) -> ExchangeRateOut:
    return await service.add_rate(session, actor, body)


@router.get(
    "/exchange-rates/latest",
    tags=["settlement"],
    response_model=list[ExchangeRateOut],
    responses=ERRORS,
    summary="The newest rate of each pair: what a settlement takes as its snapshot",
)
async def latest_rates(
    session: DbSession,
    _actor: StaffActor,
    at: Annotated[AwareDatetime | None, Query(description="As they were at this moment; omitted: now")] = None,
) -> list[ExchangeRateOut]:
    return await service.latest_rates(session, at)


# --- the customer 360 ---


@router.get(
    "/customers/{customer_id}/360",
    tags=["customers"],
    response_model=Customer360,
    responses=NOT_FOUND,
    summary="The customer 360: identities, previous tickets, assets with warranty and contract, orders, satisfaction",
)
async def customer_360(customer_id: CustomerId, session: DbSession, actor: StaffActor) -> Customer360:
    return await customer360.build(session, actor, customer_id)
