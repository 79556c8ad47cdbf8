"""The reads settlement makes to price a ticket from what is known about it (``gather``): the
customer (member level, referrals, billing currency), the asset and what covers work on it that
day (warranty, contract), the engineer's home and the site (travel distance), the region's
calendar (night and holiday); and the rate table (``latest_rate``). About eight queries per
settlement (more only along a customer merge chain), none in a loop over rows.

How these facts become the pricing request — what the node sent wins, which rate is needed — is
``activities/settlement.py``'s (docs/pricing.md, *Where the inputs come from*).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.calendar import conditions_at
from domain.geo import haversine_km
from models.calendar import BusinessCalendar
from models.customer_tables import Asset, ExchangeRateRow
from models.pricing import Coverage, CoverageScope, RateSnapshot
from models.settlement import SettleContext
from models.tables import Actor
from store import assets, customers, rates, regions

_TENTH_KM = Decimal("0.1")  # travel is priced to 0.1 km


@dataclass(frozen=True)
class CustomerFacts:
    """A customer as pricing sees it: the surviving record of a merge, with the referrals of its
    whole family (every record merged into it)."""

    id: str
    member_level: str | None
    billing_currency: str | None
    family: list[str]
    referrals: int


@dataclass(frozen=True)
class TicketFacts:
    """What ``gather`` found for a ``SettleContext``; ``None``: unknown. ``notes`` say what the
    context named but could not be used. ``rates`` is the settle activity's to fill."""

    context: SettleContext
    customer: CustomerFacts | None
    coverage: tuple[Coverage, ...]
    travel_km: Decimal | None
    conditions: tuple[str, ...]
    notes: tuple[str, ...]
    rates: RateSnapshot | None = None


async def gather(session: AsyncSession, region: str, ctx: SettleContext, now: datetime) -> TicketFacts:
    """The ticket's pricing facts. The customer is the context's, else the asset's owner; the
    coverage is that of ``worked_at``'s local date in the region (``now``'s without it), counting
    only contracts written by that moment (one dated back over finished work prices nothing); the
    conditions are the region calendar's at ``worked_at`` (none without it). Something the
    context names that is not in the database is left out, with a note."""
    notes: list[str] = []
    asset = await assets.get(session, ctx.asset_id) if ctx.asset_id else None
    if ctx.asset_id and asset is None:
        notes.append(f"asset {ctx.asset_id} not found: no warranty, no site location")
    customer_id = ctx.customer_id or (asset.customer_id if asset is not None else None)
    found = await customer(session, customer_id) if customer_id else None
    if customer_id and found is None:
        notes.append(f"customer {customer_id} not found: no member level, referrals or contract")
    cal = await calendar(session, region)
    worked_at = ctx.worked_at
    if worked_at is not None and worked_at.tzinfo is None:
        worked_at = worked_at.replace(tzinfo=UTC)  # a naive instant is read as UTC
    coverage: tuple[Coverage, ...] = ()
    if asset is not None or found is not None:
        moment = worked_at or now
        day = moment.astimezone(ZoneInfo(cal.timezone)).date()
        family = found.family if found else []
        coverage = covered_by(await assets.coverage(session, family, asset, day, created_before=moment))
    travel_km = await _travel_km(session, ctx, asset, notes)
    return TicketFacts(
        context=ctx,
        customer=found,
        coverage=coverage,
        travel_km=travel_km,
        conditions=conditions_at(cal, worked_at) if worked_at is not None else (),
        notes=tuple(notes),
    )


def covered_by(found: assets.Coverage) -> tuple[Coverage, ...]:
    """The warranty first (the maker pays before a contract does), then the contract, each by
    name: ``warranty until 2027-03-31``, ``contract SC-2026-0042``."""
    out = []
    if found.in_warranty and found.warranty_covers and found.warranty_end is not None:
        name = f"warranty until {found.warranty_end.isoformat()}"
        out.append(Coverage(name=name, covers=CoverageScope(found.warranty_covers)))
    contract = found.contract
    if contract is not None and (contract.covers_labour or contract.covers_parts):
        if contract.covers_labour and contract.covers_parts:
            covers = CoverageScope.LABOUR_AND_PARTS
        else:
            covers = CoverageScope.LABOUR if contract.covers_labour else CoverageScope.PARTS
        out.append(Coverage(name=f"contract {contract.number}", covers=covers))
    return tuple(out)


async def _travel_km(
    session: AsyncSession, ctx: SettleContext, asset: Asset | None, notes: list[str]
) -> Decimal | None:
    """Great-circle km (dispatch's distance) from the engineer's home to the site — the
    context's coordinates, else the asset's — rounded half up to 0.1 km; None when unknown."""
    if ctx.site_lat is not None and ctx.site_lon is not None:
        site: tuple[float, float] | None = (ctx.site_lat, ctx.site_lon)
    elif asset is not None and asset.lat is not None and asset.lon is not None:
        site = (asset.lat, asset.lon)
    else:
        site = None
    start = await home(session, ctx.engineer_id) if ctx.engineer_id else None
    if site is None or start is None:
        if not ctx.engineer_id:
            notes.append("travel: no engineer named, 0 km")
        elif start is None:
            notes.append(f"travel: engineer {ctx.engineer_id} has no home location, 0 km")
        else:
            notes.append("travel: the site has no location, 0 km")
        return None
    km = Decimal(haversine_km(start[0], start[1], site[0], site[1]))  # the float's exact value
    return km.quantize(_TENTH_KM, ROUND_HALF_UP)


async def customer(session: AsyncSession, customer_id: str) -> CustomerFacts | None:
    """The customer (following merges) with the referrals of every record merged into it; None
    when there is no such customer. Three queries, more only along a merge chain."""
    row = await customers.get(session, customer_id)
    if row is None:
        return None
    family = await customers.family(session, row.id)
    return CustomerFacts(
        id=row.id,
        member_level=row.member_level,
        billing_currency=row.billing_currency,
        family=family,
        referrals=await customers.referral_count(session, family),
    )


async def home(session: AsyncSession, person_id: str) -> tuple[float, float] | None:
    """Where the person starts from (dispatch's ``home_lat``/``home_lon``), when both are known."""
    q = select(Actor.home_lat, Actor.home_lon).where(Actor.id == person_id)
    found = (await session.exec(q)).first()
    if found is None or found[0] is None or found[1] is None:
        return None
    return found[0], found[1]


async def calendar(session: AsyncSession, region: str) -> BusinessCalendar:
    """The region's business calendar; without one, Mon–Fri 09:00–18:00 in the region's timezone
    (``Region.calendar``'s documented default; UTC for an unknown region)."""
    row = await regions.get(session, region)
    if row is None:
        return BusinessCalendar.weekly("UTC", "09:00-18:00", "mon-fri")
    return regions.calendar_of(row)


async def latest_rate(session: AsyncSession, base: str, quote: str, at: datetime) -> ExchangeRateRow | None:
    """The newest ``base`` → ``quote`` row of the rate table whose ``as_of`` is not after ``at``."""
    for row in await rates.latest_rates(session, at):
        if row.base == base and row.quote == quote:
            return row
    return None
