"""Assets, service contracts, SLA tiers and exchange rates: the rules around ``store/assets.py``
and ``store/rates.py``.

Scope: an asset is seen by staff of its region, a contract by staff of its customer's region
(following merges); anything else is ``NotFound``. A customer, asset or tier a body names that
the caller may not see is reported like one that does not exist: a 422 naming the field.
Channel (machine) accounts are refused by the routers (``StaffActor``).

Writes: assets by ``WRITERS``; SLA tiers (global) by ``TIER_WRITERS``; exchange rates by
``RATE_WRITERS``. What makes a repair free or cheaper is ``PRICING``'s (leads and finance), never
the front line's: an asset's warranty (``warranty_end``, ``warranty_covers``) and service
contracts — creating one at all, and its coverage, validity and tier. A refused field is a 403
naming it; a warranty field sent back unchanged is no change. Each change is recorded in the
audit log in its own transaction.

Every asset read shows its warranty status and its valid contract today — today being the date
in the asset's region — as ``store.assets.coverage`` (what intake and settlement use) finds it.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

import store.assets
import store.customers
import store.rates
import store.regions
import store.tickets
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound, ProblemList
from api.services import audit
from api.services.customers import PRICING, require_pricing
from api.services.paging import cursor_key
from domain.access import can_access_region, visible_regions
from models.assets_http import (
    AssetCreate,
    AssetFields,
    AssetOut,
    AssetPage,
    AssetPatch,
    ContractCreate,
    ContractOut,
    ContractPage,
    ContractPatch,
    ContractStatus,
    ExchangeRateIn,
    ExchangeRateOut,
    RepairHistoryPage,
    RepairTicket,
    SlaTierIn,
    SlaTierOut,
    WarrantyStatus,
)
from models.customer_tables import Asset, Customer, ExchangeRateRow, ServiceContract, SlaTier
from models.ticket import ActorRef
from store import customer360 as batch

WRITERS = frozenset({"agent", "sales", "supervisor", "manager", "admin"})
WARRANTY = ("warranty_end", "warranty_covers")  # an asset's fields that price its repairs
TIER_WRITERS = frozenset({"admin", "manager"})
RATE_WRITERS = frozenset({"finance", "admin"})
MAX_TIERS = 500  # GET /sla-tiers lists at most this many (a handful in practice)
QR_BYTES = 24  # random bytes behind a QR code: 32 URL-safe characters, unguessable


def _require(actor: ActorRef, roles: frozenset[str], what: str) -> None:
    if roles.isdisjoint(actor.roles):
        raise Forbidden(f"actor {actor.id!r} may not {what} (roles: {', '.join(sorted(roles))})")


def _invalid(error: ValidationError) -> ProblemList:
    """A merged PATCH that no longer validates: the problems, with ``body`` in front of each path."""
    return ProblemList(
        [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in error.errors(include_url=False)]
    )


async def _commit(session: AsyncSession, conflict: str) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(conflict) from exc


def today_in(timezone: str) -> date:
    """Today's date where ``timezone`` is (UTC for an unknown zone)."""
    try:
        return datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return datetime.now(UTC).date()


# --- output ---


def warranty(asset: Asset, day: date) -> WarrantyStatus:
    """Covered up to and including ``warranty_end``."""
    covered = asset.warranty_end is not None and day <= asset.warranty_end
    return WarrantyStatus(
        in_warranty=covered,
        until=asset.warranty_end,
        covers=asset.warranty_covers if covered else None,  # type: ignore[arg-type]
        days_left=(asset.warranty_end - day).days if covered and asset.warranty_end is not None else None,
    )


def coverage_of(c: ServiceContract) -> Any:
    if c.covers_labour and c.covers_parts:
        return "labour_and_parts"
    return "labour" if c.covers_labour else "parts" if c.covers_parts else None


def contract_status(c: ServiceContract | None, tier: SlaTier | None) -> ContractStatus | None:
    if c is None:
        return None
    return ContractStatus(
        id=c.id,
        number=c.number,
        coverage=coverage_of(c),
        covers_labour=c.covers_labour,
        covers_parts=c.covers_parts,
        sla_tier=c.sla_tier,
        response_minutes=tier.response_minutes if tier is not None else None,
        resolution_minutes=tier.resolution_minutes if tier is not None else None,
        valid_to=c.valid_to,
    )


def _asset_out(a: Asset, customer_id: str, day: date, contract: ContractStatus | None) -> AssetOut:
    return AssetOut(
        **a.model_dump(exclude={"customer_id"}), customer_id=customer_id, warranty=warranty(a, day), contract=contract
    )


async def _survivor(session: AsyncSession, customer_id: str) -> Customer:
    """The customer a record is, or was merged into (the row itself if the chain breaks)."""
    found = await store.customers.get(session, customer_id)
    if found is None:
        raise NotFound(f"customer {customer_id} not found")
    return found


async def asset_view(session: AsyncSession, a: Asset) -> AssetOut:
    """One asset with its warranty and its valid contract today, as ``store.assets.coverage`` finds them."""
    customer = await _survivor(session, a.customer_id)
    family = await store.customers.family(session, customer.id)
    region = await store.regions.get(session, a.region)
    day = today_in(region.timezone if region is not None else "UTC")
    cover = await store.assets.coverage(session, family, a, day)
    return _asset_out(a, customer.id, day, contract_status(cover.contract, cover.tier))


# --- assets ---


def _visible_asset(actor: ActorRef, asset: Asset | None, named: str) -> Asset:
    if asset is None or not can_access_region(actor, asset.region):
        raise NotFound(f"asset {named} not found")
    return asset


async def _writable_customer(session: AsyncSession, actor: ActorRef, customer_id: str) -> Customer:
    customer = await store.customers.get(session, customer_id)
    if customer is None or not can_access_region(actor, customer.region):
        raise FieldInvalid("customer_id", f"no customer {customer_id!r}", "unknown_customer")
    return customer


async def _placeable_region(session: AsyncSession, actor: ActorRef, region: str) -> None:
    if await store.regions.get(session, region) is None:
        raise FieldInvalid("region", f"unknown region {region!r}", "unknown_region")
    if not can_access_region(actor, region):
        raise Forbidden(f"actor {actor.id!r} may not place assets in region {region!r}")


async def _serial_free(session: AsyncSession, serial: str) -> None:
    if await store.assets.by_serial(session, serial) is not None:
        raise Conflict(f"an asset with serial {serial!r} is already registered")


async def create_asset(session: AsyncSession, actor: ActorRef, body: AssetCreate) -> AssetOut:
    _require(actor, WRITERS, "register assets")
    for field in WARRANTY:
        if field in body.model_fields_set and getattr(body, field) != AssetCreate.model_fields[field].default:
            require_pricing(actor, field)
    customer = await _writable_customer(session, actor, body.customer_id)
    region = body.region or customer.region
    if body.region is not None:
        await _placeable_region(session, actor, region)
    await _serial_free(session, body.serial)
    row = Asset(
        id="ast_" + secrets.token_hex(12),
        customer_id=customer.id,
        qr_code=secrets.token_urlsafe(QR_BYTES),
        created_at=datetime.now(UTC),
        **body.model_dump(exclude={"customer_id", "region"}),
        region=region,
    )
    store.assets.save(session, row)
    audit.record(session, actor, "asset.create", "asset", row.id, None, row.model_dump(exclude={"qr_code"}))
    await _commit(session, f"an asset with serial {body.serial!r} is already registered")
    return await asset_view(session, row)


async def get_asset(session: AsyncSession, actor: ActorRef, asset_id: str) -> AssetOut:
    return await asset_view(session, _visible_asset(actor, await store.assets.get(session, asset_id), asset_id))


async def asset_by_qr(session: AsyncSession, actor: ActorRef, qr_code: str) -> AssetOut:
    """The asset a scanned QR code names (the code is not echoed back in the 404)."""
    return await asset_view(
        session, _visible_asset(actor, await store.assets.by_qr(session, qr_code), "with this QR code")
    )


async def asset_by_serial(session: AsyncSession, actor: ActorRef, serial: str) -> AssetOut:
    found = await store.assets.by_serial(session, serial)
    return await asset_view(session, _visible_asset(actor, found, f"with serial {serial!r}"))


FIELDS = tuple(AssetFields.model_fields)


async def patch_asset(session: AsyncSession, actor: ActorRef, asset_id: str, body: AssetPatch) -> AssetOut:
    """Writers change the asset; its warranty is ``PRICING``'s (finance may change only that)."""
    _require(actor, WRITERS | PRICING, "change assets")
    row = _visible_asset(actor, await store.assets.get(session, asset_id), asset_id)
    before = {k: getattr(row, k) for k in FIELDS}
    try:
        merged = AssetFields.model_validate({**before, **body.model_dump(exclude_unset=True)})
    except ValidationError as exc:
        raise _invalid(exc) from None
    after = merged.model_dump()
    changed = {k for k in FIELDS if after[k] != before[k]}
    for field in WARRANTY:
        if field in changed:
            require_pricing(actor, field)
    if changed - set(WARRANTY):
        _require(actor, WRITERS, "change assets")
    if after["region"] != row.region:
        await _placeable_region(session, actor, after["region"])
    if after["serial"] != row.serial:
        await _serial_free(session, after["serial"])
    old, new = audit.changes(before, after)
    if new:
        for k, v in after.items():
            setattr(row, k, v)
        store.assets.save(session, row)
        audit.record(session, actor, "asset.update", "asset", row.id, old, new)
        await _commit(session, f"an asset with serial {after['serial']!r} is already registered")
    return await asset_view(session, row)


@dataclass
class AssetFilter:
    customer_id: str | None = None
    serial: str | None = None
    model: str | None = None


async def list_assets(
    session: AsyncSession, actor: ActorRef, f: AssetFilter, limit: int, cursor: str | None
) -> AssetPage:
    """Newest first, keyset-paged; a page is read in four queries however long it is (and the
    customer look-up when filtering by one)."""
    family = None
    if f.customer_id is not None:
        customer = await store.customers.get(session, f.customer_id)
        if customer is None or not can_access_region(actor, customer.region):
            raise NotFound(f"customer {f.customer_id} not found")
        family = await store.customers.family(session, customer.id)
    rows, next_cursor = await store.assets.page(
        session,
        regions=visible_regions(actor),
        customer_ids=family,
        serial=f.serial,
        model=f.model,
        limit=limit,
        after=cursor_key(cursor, datetime, str),
    )
    return AssetPage(items=await assets_out(session, rows), next_cursor=next_cursor)


async def assets_out(session: AsyncSession, rows: list[tuple[Asset, str]]) -> list[AssetOut]:
    """Assets (with their region's timezone) as shown, in three queries for the lot."""
    if not rows:
        return []
    survivors = await batch.survivors(session, list({a.customer_id for a, _ in rows}))
    roots = {
        a.customer_id: survivors[a.customer_id][0].id if a.customer_id in survivors else a.customer_id for a, _ in rows
    }
    families = await batch.families(session, list(set(roots.values())))
    days = {a.id: today_in(tz) for a, tz in rows}
    contracts = await store.assets.contracts_covering(
        session,
        sorted({i for fam in families.values() for i in fam}),
        [a.id for a, _ in rows],
        min(days.values()),
        max(days.values()),
    )
    out = []
    for a, _ in rows:
        root = roots[a.customer_id]
        picked = store.assets.covering(contracts, families.get(root, [root]), a.id, days[a.id])
        out.append(_asset_out(a, root, days[a.id], contract_status(*picked) if picked else None))
    return out


async def repair_history(
    session: AsyncSession, actor: ActorRef, asset_id: str, limit: int, cursor: str | None
) -> RepairHistoryPage:
    """The asset's tickets in the caller's regions, newest first (keyset on created_at, id)."""
    _visible_asset(actor, await store.assets.get(session, asset_id), asset_id)
    rows, next_cursor = await store.tickets.page(
        session,
        regions=visible_regions(actor),
        asset_id=asset_id,
        limit=limit,
        after=cursor_key(cursor, datetime, str),
    )
    return RepairHistoryPage(
        items=[RepairTicket.model_validate(r, from_attributes=True) for r in rows], next_cursor=next_cursor
    )


# --- contracts ---


def _contract_out(c: ServiceContract, customer_id: str) -> ContractOut:
    return ContractOut(**c.model_dump(exclude={"customer_id"}), customer_id=customer_id, coverage=coverage_of(c))


async def _visible_contract(
    session: AsyncSession, actor: ActorRef, contract_id: str
) -> tuple[ServiceContract, Customer]:
    row = await store.assets.contract(session, contract_id)
    customer = await store.customers.get(session, row.customer_id) if row is not None else None
    if row is None or customer is None or not can_access_region(actor, customer.region):
        raise NotFound(f"contract {contract_id} not found")
    return row, customer


async def _known_tier(session: AsyncSession, code: str | None) -> None:
    if code is not None and await store.assets.tier(session, code) is None:
        raise FieldInvalid("sla_tier", f"no SLA tier {code!r}", "unknown_sla_tier")


async def create_contract(session: AsyncSession, actor: ActorRef, body: ContractCreate) -> ContractOut:
    """A contract prices work at zero (or sets its SLA): a money decision, ``PRICING``'s alone."""
    _require(actor, PRICING, "write service contracts")
    customer = await _writable_customer(session, actor, body.customer_id)
    if body.asset_id is not None:
        asset = await store.assets.get(session, body.asset_id)
        if asset is None or not can_access_region(actor, asset.region):
            raise FieldInvalid("asset_id", f"no asset {body.asset_id!r}", "unknown_asset")
        if asset.customer_id not in await store.customers.family(session, customer.id):
            raise FieldInvalid("asset_id", "this asset belongs to another customer", "asset_of_another_customer")
    await _known_tier(session, body.sla_tier)
    if await store.assets.contract_by_number(session, body.number) is not None:
        raise Conflict(f"contract number {body.number!r} is taken")
    row = ServiceContract(
        id="ctr_" + secrets.token_hex(12),
        created_at=datetime.now(UTC),
        **body.model_dump(exclude={"customer_id"}),
        customer_id=customer.id,
    )
    store.assets.save(session, row)
    audit.record(session, actor, "contract.create", "service_contract", row.id, None, row.model_dump())
    await _commit(session, f"contract number {body.number!r} is taken")
    return _contract_out(row, customer.id)


async def get_contract(session: AsyncSession, actor: ActorRef, contract_id: str) -> ContractOut:
    row, customer = await _visible_contract(session, actor, contract_id)
    return _contract_out(row, customer.id)


async def patch_contract(session: AsyncSession, actor: ActorRef, contract_id: str, body: ContractPatch) -> ContractOut:
    """Every field of a contract (coverage, validity, tier) is ``PRICING``'s: 403 naming the first."""
    given = body.model_dump(exclude_unset=True)
    for field in given:
        require_pricing(actor, field)
    _require(actor, PRICING, "change service contracts")
    row, customer = await _visible_contract(session, actor, contract_id)
    if "sla_tier" in given:
        await _known_tier(session, given["sla_tier"])
    before = {k: getattr(row, k) for k in ContractPatch.model_fields}
    after = {**before, **given}
    if after["valid_to"] < after["valid_from"]:
        field = "valid_to" if "valid_to" in given else "valid_from"
        raise FieldInvalid(field, "valid_to is before valid_from", "value_error")
    old, new = audit.changes(before, after)
    if new:
        for k, v in after.items():
            setattr(row, k, v)
        store.assets.save(session, row)
        audit.record(session, actor, "contract.update", "service_contract", row.id, old, new)
        await _commit(session, f"contract {contract_id} changed meanwhile")
    return _contract_out(row, customer.id)


@dataclass
class ContractFilter:
    customer_id: str | None = None
    asset_id: str | None = None
    number: str | None = None
    valid_on: date | None = None


async def list_contracts(
    session: AsyncSession, actor: ActorRef, f: ContractFilter, limit: int, cursor: str | None
) -> ContractPage:
    """A customer's contracts (with its merged records'), an asset's, or one by number; newest first."""
    if f.customer_id is not None:
        customer = await store.customers.get(session, f.customer_id)
        if customer is None or not can_access_region(actor, customer.region):
            raise NotFound(f"customer {f.customer_id} not found")
    elif f.asset_id is not None:
        asset = _visible_asset(actor, await store.assets.get(session, f.asset_id), f.asset_id)
        customer = await _survivor(session, asset.customer_id)
    elif f.number is not None:
        found = await store.assets.contract_by_number(session, f.number)
        by_number = await store.customers.get(session, found.customer_id) if found is not None else None
        if by_number is None or not can_access_region(actor, by_number.region):
            return ContractPage(items=[], next_cursor=None)
        customer = by_number
    else:
        raise FieldInvalid("customer_id", "name a customer_id, an asset_id or a number", "missing", location="query")
    family = await store.customers.family(session, customer.id)
    if f.asset_id is not None and f.customer_id is not None:
        named = await store.assets.get(session, f.asset_id)
        if named is None or named.customer_id not in family or not can_access_region(actor, named.region):
            return ContractPage(items=[], next_cursor=None)
    rows, next_cursor = await store.assets.contracts_page(
        session,
        customer_ids=family,
        asset_id=f.asset_id,
        number=f.number,
        valid_on=f.valid_on,
        limit=limit,
        after=cursor_key(cursor, datetime, str),
    )
    return ContractPage(items=[_contract_out(c, customer.id) for c in rows], next_cursor=next_cursor)


# --- SLA tiers ---


def _tier_out(t: SlaTier) -> SlaTierOut:
    return SlaTierOut.model_validate(t, from_attributes=True)


async def put_tier(session: AsyncSession, actor: ActorRef, code: str, body: SlaTierIn) -> tuple[SlaTierOut, bool]:
    """Create or replace a tier; True when it was created."""
    _require(actor, TIER_WRITERS, "change SLA tiers")
    row = await store.assets.tier(session, code)
    created = row is None
    before = None if row is None else _tier_out(row).model_dump()
    row = row or SlaTier(code=code, name=body.name)
    for k, v in body.model_dump().items():
        setattr(row, k, v)
    after = _tier_out(row).model_dump()
    if before != after:
        store.assets.save(session, row)
        audit.record(
            session, actor, "sla_tier.create" if created else "sla_tier.update", "sla_tier", code, before, after
        )
        await _commit(session, f"SLA tier {code!r} was created meanwhile; repeat the request")
    return _tier_out(row), created


async def list_tiers(session: AsyncSession) -> list[SlaTierOut]:
    return [_tier_out(t) for t in await store.assets.tiers(session, MAX_TIERS)]


# --- exchange rates ---


async def add_rate(session: AsyncSession, actor: ActorRef, body: ExchangeRateIn) -> ExchangeRateOut:
    _require(actor, RATE_WRITERS, "add exchange rates")
    row = ExchangeRateRow(**body.model_dump())
    conflict = f"a {body.base}→{body.quote} rate as of {body.as_of.isoformat()} exists"
    store.rates.add(session, row)
    try:
        await session.flush()  # the id, for the audit entry
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(conflict) from exc
    audit.record(session, actor, "exchange_rate.create", "exchange_rate", str(row.id), None, body.model_dump())
    await _commit(session, conflict)
    await session.refresh(row)  # the rate as stored (NUMERIC(20, 10))
    return ExchangeRateOut.model_validate(row, from_attributes=True)


async def latest_rates(session: AsyncSession, at: datetime | None) -> list[ExchangeRateOut]:
    return [
        ExchangeRateOut.model_validate(r, from_attributes=True) for r in await store.rates.latest_rates(session, at)
    ]
