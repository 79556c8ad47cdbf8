"""Assets and service contracts: every query on ``asset``, ``service_contract`` and ``sla_tier``.

``coverage`` answers what pays for work on an asset on a given day: its warranty (until
``warranty_end``, inclusive) and the valid contracts naming the asset or covering all of its
customer's assets — for pricing, only those written by the time of the work (``created_before``),
so a contract dated back over a repair already done cannot make it free. Rules are
``api/services/assets.py``'s.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.customer_tables import Asset, ServiceContract, SlaTier
from models.tables import Region
from models.template import TemplateSpec
from models.ticket import ContractSla
from store import keyset


async def get(session: AsyncSession, asset_id: str) -> Asset | None:
    return await session.get(Asset, asset_id)


async def by_serial(session: AsyncSession, serial: str) -> Asset | None:
    return (await session.exec(select(Asset).where(Asset.serial == serial))).first()


async def by_qr(session: AsyncSession, qr_code: str) -> Asset | None:
    return (await session.exec(select(Asset).where(Asset.qr_code == qr_code))).first()


@dataclass(frozen=True)
class Coverage:
    """What covers work on one asset on one day."""

    in_warranty: bool
    warranty_covers: str | None  # labour | parts | labour_and_parts, when in warranty
    warranty_end: date | None
    contract: ServiceContract | None  # the valid contract (the one covering most, then the latest)
    tier: SlaTier | None  # the contract's SLA tier


async def contracts_on(
    session: AsyncSession,
    customer_ids: list[str],
    asset_id: str | None,
    day: date,
    *,
    created_before: datetime | None = None,
) -> list[ServiceContract]:
    """The customer's contracts valid on ``day`` that cover ``asset_id`` (or all their assets);
    with ``created_before``, only those written (``created_at``) at or before that instant."""
    scope: Any = col(ServiceContract.asset_id).is_(None)
    if asset_id is not None:
        scope = or_(scope, col(ServiceContract.asset_id) == asset_id)
    q = select(ServiceContract).where(
        col(ServiceContract.customer_id).in_(customer_ids),
        col(ServiceContract.valid_from) <= day,
        col(ServiceContract.valid_to) >= day,
        scope,
    )
    if created_before is not None:
        q = q.where(col(ServiceContract.created_at) <= created_before)
    return list((await session.exec(q)).all())


def best_contract(contracts: list[ServiceContract]) -> ServiceContract | None:
    """The contract that covers most (labour and parts, then either), then the one valid longest."""
    if not contracts:
        return None
    return max(contracts, key=lambda c: (c.covers_labour + c.covers_parts, c.valid_to, c.id))


async def coverage(
    session: AsyncSession,
    customer_ids: list[str],
    asset: Asset | None,
    day: date,
    *,
    created_before: datetime | None = None,
) -> Coverage:
    """What covers work on ``asset`` on ``day``; ``created_before`` (settlement: the moment of the
    work) leaves out contracts written after it."""
    in_warranty = asset is not None and asset.warranty_end is not None and day <= asset.warranty_end
    found = await contracts_on(session, customer_ids, asset.id if asset else None, day, created_before=created_before)
    contract = best_contract(found)
    tier = await session.get(SlaTier, contract.sla_tier) if contract is not None and contract.sla_tier else None
    return Coverage(
        in_warranty=in_warranty,
        warranty_covers=asset.warranty_covers if in_warranty and asset is not None else None,
        warranty_end=asset.warranty_end if asset is not None else None,
        contract=contract,
        tier=tier,
    )


# --- assets: writes and lists ---


def save(session: AsyncSession, row: Asset | ServiceContract | SlaTier) -> None:
    """A new or changed asset, contract or tier, written with the caller's commit."""
    session.add(row)


async def page(
    session: AsyncSession,
    *,
    regions: list[str] | None,
    customer_ids: list[str] | None = None,
    serial: str | None = None,
    model: str | None = None,
    limit: int,
    after: keyset.Key | None = None,
) -> tuple[list[tuple[Asset, str]], str | None]:
    """Newest first, keyset-paged on (created_at, id): (asset, its region's timezone) rows;
    ``regions`` None: every region."""
    q = select(Asset, Region.timezone).join(Region, col(Region.code) == col(Asset.region))
    if regions is not None:
        q = q.where(col(Asset.region).in_(regions))
    if customer_ids is not None:
        q = q.where(col(Asset.customer_id).in_(customer_ids))
    if serial is not None:
        q = q.where(col(Asset.serial) == serial)
    if model is not None:
        q = q.where(col(Asset.model) == model)
    if after is not None:
        q = q.where(keyset.before([col(Asset.created_at), col(Asset.id)], after))
    q = q.order_by(col(Asset.created_at).desc(), col(Asset.id).desc()).limit(limit + 1)
    rows = [(a, tz) for a, tz in (await session.exec(q)).all()]
    return keyset.page(rows, limit, lambda r: (r[0].created_at, r[0].id))


# --- contracts ---


async def contract(session: AsyncSession, contract_id: str) -> ServiceContract | None:
    return await session.get(ServiceContract, contract_id)


async def contract_by_number(session: AsyncSession, number: str) -> ServiceContract | None:
    return (await session.exec(select(ServiceContract).where(ServiceContract.number == number))).first()


async def contracts_page(
    session: AsyncSession,
    *,
    customer_ids: list[str],
    asset_id: str | None = None,
    number: str | None = None,
    valid_on: date | None = None,
    limit: int,
    after: keyset.Key | None = None,
) -> tuple[list[ServiceContract], str | None]:
    """The contracts of a customer (and its merged records), newest first, keyset-paged on
    (created_at, id). ``asset_id``: those covering the asset — naming it, or all the customer's
    assets. ``valid_on``: valid that day."""
    q = select(ServiceContract).where(col(ServiceContract.customer_id).in_(customer_ids))
    if asset_id is not None:
        q = q.where(or_(col(ServiceContract.asset_id).is_(None), col(ServiceContract.asset_id) == asset_id))
    if number is not None:
        q = q.where(col(ServiceContract.number) == number)
    if valid_on is not None:
        q = q.where(col(ServiceContract.valid_from) <= valid_on, col(ServiceContract.valid_to) >= valid_on)
    if after is not None:
        q = q.where(keyset.before([col(ServiceContract.created_at), col(ServiceContract.id)], after))
    q = q.order_by(col(ServiceContract.created_at).desc(), col(ServiceContract.id).desc()).limit(limit + 1)
    return keyset.page(list((await session.exec(q)).all()), limit, lambda c: (c.created_at, c.id))


async def contracts_covering(
    session: AsyncSession, customer_ids: list[str], asset_ids: list[str], first_day: date, last_day: date
) -> list[tuple[ServiceContract, SlaTier | None]]:
    """In one query, with their tiers: the contracts of these customers valid on some day from
    ``first_day`` to ``last_day`` that name one of ``asset_ids`` or cover all the customer's
    assets. Callers pick each asset's with ``covering`` (the days differ by the region's timezone)."""
    if not customer_ids:
        return []
    scope: Any = col(ServiceContract.asset_id).is_(None)
    if asset_ids:
        scope = or_(scope, col(ServiceContract.asset_id).in_(asset_ids))
    q = (
        select(ServiceContract, SlaTier)
        .join(SlaTier, col(SlaTier.code) == col(ServiceContract.sla_tier), isouter=True)
        .where(
            col(ServiceContract.customer_id).in_(customer_ids),
            col(ServiceContract.valid_from) <= last_day,
            col(ServiceContract.valid_to) >= first_day,
            scope,
        )
    )
    return [(c, t) for c, t in (await session.exec(q)).all()]


def covering(
    contracts: list[tuple[ServiceContract, SlaTier | None]], customer_ids: list[str], asset_id: str | None, day: date
) -> tuple[ServiceContract, SlaTier | None] | None:
    """Of ``contracts_covering``'s rows, the best (``best_contract``) of the customer's
    (``customer_ids``: its merge family) valid on ``day`` for the asset — or, ``asset_id`` None,
    covering all the customer's assets: what ``coverage`` picks, without a query."""
    valid = {
        c.id: (c, t)
        for c, t in contracts
        if c.customer_id in customer_ids
        and c.valid_from <= day <= c.valid_to
        and (c.asset_id is None or c.asset_id == asset_id)
    }
    best = best_contract([c for c, _ in valid.values()])
    return None if best is None else valid[best.id]


# --- SLA tiers ---


async def tier(session: AsyncSession, code: str) -> SlaTier | None:
    return await session.get(SlaTier, code)


async def tiers(session: AsyncSession, limit: int) -> list[SlaTier]:
    """By code, at most ``limit``."""
    return list((await session.exec(select(SlaTier).order_by(col(SlaTier.code)).limit(limit))).all())


# --- what intake takes from an asset and its contracts (POST /tickets and intake.open_ticket) ---


def fill_from_asset(spec: TemplateSpec, fields: dict[str, Any], asset: Asset | None) -> dict[str, Any]:
    """``fields`` with the template's ``from_asset`` fields filled from the asset where left empty."""
    if asset is None or not spec.from_asset:
        return fields
    filled = dict(fields)
    for name, attribute in spec.from_asset.items():
        if filled.get(name) not in (None, ""):
            continue
        if attribute == "site":
            if asset.lat is not None and asset.lon is not None:
                filled[name] = {"lat": asset.lat, "lon": asset.lon, "address": asset.site_address}
        elif value := {"serial": asset.serial, "model": asset.model, "site_address": asset.site_address}[attribute]:
            filled[name] = value
    return filled


async def contract_sla(
    session: AsyncSession, family: list[str], asset: Asset | None, timezone: str
) -> ContractSla | None:
    """The SLA tier of the contract covering this work today (the region's date), if any;
    ``family``: the customer and the records merged into it (empty: no customer)."""
    if not family:
        return None
    today = datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
    cover = await coverage(session, family, asset, today)
    if cover.contract is None or cover.tier is None:
        return None
    tier = cover.tier
    return ContractSla(
        contract=cover.contract.number,
        tier=tier.code,
        response=timedelta(minutes=tier.response_minutes) if tier.response_minutes else None,
        resolution=timedelta(minutes=tier.resolution_minutes) if tier.resolution_minutes else None,
    )
