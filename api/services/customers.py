"""Customers: records, their contact identities, merging, search and resolution, the CSV
import, and the orders the business systems report (docs/customers.md).

Scope: a customer is seen by staff of its region (``["*"]``: every region); anyone else gets
``NotFound``, and a merged-away record is seen through its survivor. Channel accounts never get
here (``StaffActor``). Reads are any staff's; creating, changing, identities and orders are
``WRITERS``'; merging, importing and moving a customer to another region are ``LEADS'``. What
moves money — the member level, a discount on every statement — is ``PRICING``'s alone (leads
and finance): the front line may not make a customer's repairs cheaper (a 403 naming the field).

A write addressed to a merged-away record is a ``Conflict`` naming the survivor: the client
writes to the survivor (reads follow the merge by themselves). Every change is recorded in the
audit log in the transaction of the change.
"""

import base64
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

import store.assets
import store.customers
import store.integrations
import store.regions
import store.statements
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound
from api.services import audit
from api.services.paging import cursor_key
from domain.access import can_access_region, visible_regions
from domain.identities import BadIdentity, normalize
from models.customer_tables import Customer, CustomerIdentity, CustomerOrder
from models.customers_http import (
    CONSENT_CHANNELS,
    CustomerCreate,
    CustomerItem,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    IdentityIn,
    IdentityOut,
    OrderIn,
    OrderOut,
    OrderPage,
)
from models.pricing import CURRENCIES
from models.ticket import ActorRef

WRITERS = frozenset({"agent", "sales", "supervisor", "manager", "admin"})
LEADS = frozenset({"supervisor", "manager", "admin"})
# Who decides what a customer pays: the member level here; contracts and warranties in assets.py.
PRICING = LEADS | {"finance"}
TAKEN = "identity already registered"
# Referral codes drawn before giving up on a free one (40 random bits each: a clash is rare).
CODE_ATTEMPTS = 8


# --- scope and roles ---


def require(actor: ActorRef, roles: frozenset[str], what: str) -> None:
    if roles.isdisjoint(actor.roles):
        raise Forbidden(f"actor {actor.id!r} may not {what} (roles: {', '.join(sorted(roles))})")


def require_pricing(actor: ActorRef, field: str) -> None:
    """``field`` changes what the customer pays: ``PRICING`` only (403 naming the field)."""
    if PRICING.isdisjoint(actor.roles):
        raise Forbidden(
            f"actor {actor.id!r} may not set {field}: it changes what the customer pays "
            f"(roles: {', '.join(sorted(PRICING))})",
            field=field,
        )


def visible(actor: ActorRef, row: Customer) -> bool:
    return can_access_region(actor, row.region)


def not_found(customer_id: str) -> NotFound:
    return NotFound(f"customer {customer_id} not found")


async def visible_customer(session: AsyncSession, actor: ActorRef, customer_id: str) -> Customer:
    """The customer (a merged record's survivor) if the caller sees it, else ``NotFound``."""
    row = await store.customers.get(session, customer_id)
    if row is None or not visible(actor, row):
        raise not_found(customer_id)
    return row


async def writable_customer(
    session: AsyncSession, actor: ActorRef, customer_id: str, roles: frozenset[str] = WRITERS
) -> Customer:
    """The record itself, locked until the commit; a merged one is a ``Conflict`` naming the survivor."""
    require(actor, roles, "change customers")
    row = await store.customers.get_row(session, customer_id, lock=True)
    if row is not None and row.merged_into is not None:
        survivor = await store.customers.get(session, row.id)
        if survivor is None or not visible(actor, survivor):
            raise not_found(customer_id)
        raise Conflict(
            f"customer {customer_id} was merged into {survivor.id}: write to that record", merged_into=survivor.id
        )
    if row is None or not visible(actor, row):
        raise not_found(customer_id)
    return row


async def check_region(session: AsyncSession, actor: ActorRef, region: str, field: str) -> None:
    """It exists (else 422 naming ``field``, as for tickets) and the caller works there (else
    ``Forbidden``)."""
    if await store.regions.get(session, region) is None:
        raise FieldInvalid(field, f"unknown region {region!r}", "unknown_region")
    if not can_access_region(actor, region):
        raise Forbidden(f"region {region!r} is outside the regions of actor {actor.id!r}")


async def member_levels(session: AsyncSession, region: str) -> list[str] | None:
    """The member levels of the region's active price rules; None when it has none published."""
    rules = await store.statements.active_rules(session, region)
    if rules is None:
        return None
    return [str(m.get("level")) for m in (rules.rules.get("discounts") or {}).get("member_levels") or []]


def level_problem(level: str | None, levels: list[str] | None, region: str) -> str | None:
    """Why ``level`` cannot be a member level in ``region`` (None: it can)."""
    if level is None or levels is None or level in levels:
        return None
    known = ", ".join(levels) if levels else "none"
    return f"region {region!r} has no member level {level!r} in its price rules (levels: {known})"


async def check_level(session: AsyncSession, level: str | None, region: str, field: str) -> None:
    if level is not None and (problem := level_problem(level, await member_levels(session, region), region)):
        raise FieldInvalid(field, problem)


async def referrer(session: AsyncSession, actor: ActorRef, code: str, field: str) -> Customer:
    """The customer holding a referral code, if the caller sees it (else 422: never a hint that
    a customer of another region holds it)."""
    holder = await store.customers.by_referral_code(session, code)
    if holder is None or not visible(actor, holder):
        raise FieldInvalid(field, f"no customer with referral code {code!r}")
    return holder


async def taken_conflict(session: AsyncSession, actor: ActorRef, kind: str, value: str, owner_id: str) -> Conflict:
    """409 for an identity someone else holds: naming them only to a caller who sees them."""
    owner = await store.customers.get(session, owner_id)
    if owner is None or not visible(actor, owner):
        return Conflict(TAKEN, kind=kind)
    return Conflict(f"{kind} {value} already belongs to customer {owner.id}", kind=kind, customer_id=owner.id)


def new_referral_code() -> str:
    """8 characters of base32 from 40 random bits: short to read out, not guessable."""
    return base64.b32encode(secrets.token_bytes(5)).decode()


def new_customer_id() -> str:
    return "cus_" + secrets.token_hex(8)


async def free_referral_codes(session: AsyncSession, n: int) -> list[str]:
    """``n`` codes no customer holds (checked in batches; a clash is drawn again)."""
    codes: set[str] = set()
    for _ in range(CODE_ATTEMPTS):
        fresh = {new_referral_code() for _ in range(n - len(codes))} - codes
        codes |= fresh - await store.customers.referral_codes_taken(session, sorted(fresh))
        if len(codes) == n:
            return list(codes)
    raise Conflict("no free referral code was found; retry")


async def commit(session: AsyncSession, conflict: str) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(conflict) from exc


# --- output ---


def consent_out(consent: dict[str, Any]) -> dict[str, bool]:
    return {channel: consent.get(channel) is True for channel in CONSENT_CHANNELS}


def identity_out(row: CustomerIdentity) -> IdentityOut:
    return IdentityOut.model_validate(row, from_attributes=True)


async def customer_out(session: AsyncSession, row: Customer, requested_id: str | None = None) -> CustomerOut:
    family = await store.customers.family(session, row.id)
    identities = await store.customers.identities_of(session, family)
    return CustomerOut(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        name=row.name,
        region=row.region,
        member_level=row.member_level,
        referral_code=row.referral_code,
        referred_by=row.referred_by,
        referrals=await store.customers.referral_count(session, family),
        consent=consent_out(row.consent),  # type: ignore[arg-type]
        billing_currency=row.billing_currency,
        language=row.language,
        notes=row.notes,
        identities=[identity_out(i) for i in identities],
        merged_ids=family[1:],
        requested_id=requested_id or row.id,
        merged=requested_id is not None and requested_id != row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def snapshot(row: Customer) -> dict[str, Any]:
    """What the audit log records of a customer's own fields."""
    return {
        "kind": row.kind,
        "name": row.name,
        "region": row.region,
        "member_level": row.member_level,
        "referred_by": row.referred_by,
        "consent": dict(row.consent),
        "billing_currency": row.billing_currency,
        "language": row.language,
        "notes": row.notes,
    }


# --- reading ---


async def get_customer(session: AsyncSession, actor: ActorRef, customer_id: str) -> CustomerOut:
    row = await visible_customer(session, actor, customer_id)
    return await customer_out(session, row, customer_id)


def normal_identity(kind: str, value: str, field: str) -> tuple[str, str]:
    try:
        return kind, normalize(kind, value)
    except BadIdentity as exc:
        raise FieldInvalid(field, str(exc), location="query") from exc


async def resolve(session: AsyncSession, actor: ActorRef, kind: str, value: str) -> CustomerOut:
    """The customer an identity belongs to (through merges), if the caller sees it."""
    kind, value = normal_identity(kind, value, "value")
    row = await store.customers.resolve(session, kind, value)
    if row is None or not visible(actor, row):
        raise NotFound(f"no customer with {kind} {value}")
    return await customer_out(session, row)


async def search(
    session: AsyncSession,
    actor: ActorRef,
    *,
    q: str | None,
    identities: list[tuple[str, str, str]],
    member_level: str | None,
    region: str | None,
    limit: int,
    cursor: str | None,
) -> CustomerPage:
    """``identities``: (kind, value as given, query parameter) — matched on the normal form."""
    if region is not None and not can_access_region(actor, region):
        raise Forbidden(f"region {region!r} is outside the regions of actor {actor.id!r}")
    regions = [region] if region is not None else visible_regions(actor)
    wanted = [normal_identity(kind, value, param) for kind, value, param in identities]
    rows, next_cursor = await store.customers.search(
        session,
        regions=regions,
        text=q,
        identities=wanted,
        member_level=member_level,
        limit=limit,
        after=cursor_key(cursor, str, str),
    )
    held: dict[str, list[IdentityOut]] = {}
    for identity in await store.customers.identities_of(session, [r.id for r in rows]):
        held.setdefault(identity.customer_id, []).append(identity_out(identity))
    items = [
        CustomerItem(
            id=r.id,
            kind=r.kind,  # type: ignore[arg-type]
            name=r.name,
            region=r.region,
            member_level=r.member_level,
            referral_code=r.referral_code,
            billing_currency=r.billing_currency,
            language=r.language,
            identities=held.get(r.id, []),
            created_at=r.created_at,
        )
        for r in rows
    ]
    return CustomerPage(items=items, next_cursor=next_cursor)


# --- creating and changing ---


async def create(session: AsyncSession, actor: ActorRef, body: CustomerCreate) -> CustomerOut:
    require(actor, WRITERS, "create customers")
    if body.member_level is not None:
        require_pricing(actor, "member_level")
    await check_region(session, actor, body.region, "region")
    await check_level(session, body.member_level, body.region, "member_level")
    referred_by = (
        None if body.referred_by is None else (await referrer(session, actor, body.referred_by, "referred_by")).id
    )
    pairs = [(i.kind, i.value) for i in body.identities]
    owners = await store.customers.identity_owners(session, pairs)
    for kind, value in pairs:
        if (kind, value) in owners:
            raise await taken_conflict(session, actor, kind, value, owners[(kind, value)])
    now = datetime.now(UTC)
    row = Customer(
        id=new_customer_id(),
        kind=body.kind,
        name=body.name,
        region=body.region,
        member_level=body.member_level,
        referral_code=(await free_referral_codes(session, 1))[0],
        referred_by=referred_by,
        consent={str(k): v for k, v in body.consent.items()},
        billing_currency=body.billing_currency,
        language=body.language,
        notes=body.notes,
        created_at=now,
        updated_at=now,
    )
    try:
        store.customers.save(session, row)
        await session.flush()  # the customer row before the identities that point at it
        for identity in body.identities:
            store.customers.save(session, new_identity(row.id, identity, now))
        audit.record(
            session, actor, "customer.create", "customer", row.id, None, {**snapshot(row), "identities": pairs}
        )
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"{TAKEN} at the same moment; retry") from exc
    return await customer_out(session, row)


def new_identity(customer_id: str, identity: IdentityIn, now: datetime) -> CustomerIdentity:
    return CustomerIdentity(
        customer_id=customer_id, kind=identity.kind, value=identity.value, verified=identity.verified, created_at=now
    )


NOT_NULL = ("name", "consent", "language", "notes", "region")


async def patch(session: AsyncSession, actor: ActorRef, customer_id: str, body: CustomerPatch) -> CustomerOut:
    """Writers change the record; the member level is ``PRICING``'s (finance may change only it).
    A field sent back unchanged is no change, whoever sends it."""
    row = await writable_customer(session, actor, customer_id, WRITERS | PRICING)
    given = body.model_fields_set
    if "member_level" in given and body.member_level != row.member_level:
        require_pricing(actor, "member_level")
    for field in NOT_NULL:
        if field in given and getattr(body, field) is None:
            raise FieldInvalid(field, f"{field} cannot be null")
    before = snapshot(row)
    if "region" in given and body.region != row.region:
        require(actor, LEADS, "move customers to another region")
        await check_region(session, actor, str(body.region), "region")
        row.region = str(body.region)
    if "member_level" in given:
        row.member_level = body.member_level
    if {"member_level", "region"} & given:
        await check_level(session, row.member_level, row.region, "member_level")
    if body.consent is not None:
        row.consent = {**row.consent, **{str(k): v for k, v in body.consent.items()}}
    if "billing_currency" in given:
        row.billing_currency = body.billing_currency
    for field in ("name", "language", "notes"):
        if field in given:
            setattr(row, field, getattr(body, field))
    old, new = audit.changes(before, snapshot(row))
    if set(new) - {"member_level"}:
        require(actor, WRITERS, "change customers")
    if new:
        row.updated_at = datetime.now(UTC)
        store.customers.save(session, row)
        audit.record(session, actor, "customer.update", "customer", row.id, old, new)
        await commit(session, f"customer {customer_id} changed at the same moment; retry")
    return await customer_out(session, row)


async def add_identity(
    session: AsyncSession, actor: ActorRef, customer_id: str, body: IdentityIn
) -> tuple[CustomerOut, bool]:
    """Add a contact identity; one the customer already holds changes nothing (``False``)."""
    row = await writable_customer(session, actor, customer_id)
    owner = (await store.customers.identity_owners(session, [(body.kind, body.value)])).get((body.kind, body.value))
    if owner == row.id:
        return await customer_out(session, row), False
    if owner is not None:
        raise await taken_conflict(session, actor, body.kind, body.value, owner)
    now = datetime.now(UTC)
    identity = new_identity(row.id, body, now)
    store.customers.save(session, identity)
    row.updated_at = now
    store.customers.save(session, row)
    audit.record(
        session, actor, "customer.identity_add", "customer", row.id, None, {"kind": body.kind, "value": body.value}
    )
    await commit(session, f"{TAKEN} at the same moment; retry")
    return await customer_out(session, row), True


async def remove_identity(session: AsyncSession, actor: ActorRef, customer_id: str, identity_id: int) -> None:
    row = await writable_customer(session, actor, customer_id)
    identity = await store.customers.identity(session, identity_id)
    if identity is None or identity.customer_id != row.id:
        raise NotFound(f"customer {customer_id} has no identity {identity_id}")
    gone = {"id": identity.id, "kind": identity.kind, "value": identity.value}
    await store.customers.delete_identity(session, identity)
    row.updated_at = datetime.now(UTC)
    store.customers.save(session, row)
    audit.record(session, actor, "customer.identity_remove", "customer", row.id, gone, None)
    await commit(session, f"customer {customer_id} changed at the same moment; retry")


# --- merging ---


async def merge(session: AsyncSession, actor: ActorRef, customer_id: str, from_id: str) -> CustomerOut:
    """``from_id`` (and every record merged into it) is merged into ``customer_id``: its identities
    move over, its tickets, assets and orders stay where they are (readers take the family).
    Fields the survivor leaves empty are filled from the other record; a referral that would
    make the customer their own referrer is dropped."""
    require(actor, LEADS, "merge customers")
    rows = await store.customers.lock_rows(session, [customer_id, from_id])
    for cid in (customer_id, from_id):
        await _check_mergeable(session, actor, cid, rows.get(cid), "into" if cid == customer_id else "from")
    if customer_id == from_id:
        raise Conflict(f"customer {customer_id} cannot be merged into itself")
    survivor, loser = rows[customer_id], rows[from_id]
    before = snapshot(survivor)
    now = datetime.now(UTC)
    merged_ids = await store.customers.family(session, loser.id)
    await store.customers.flatten_merges(session, merged_ids, survivor.id, now)
    moved = await store.customers.move_identities(session, loser.id, survivor.id)
    await _fill_gaps(session, survivor, loser)
    dropped = await _drop_self_referral(session, survivor)
    survivor.updated_at = now
    store.customers.save(session, survivor)
    old, new = audit.changes(before, snapshot(survivor))
    audit.record(
        session,
        actor,
        "customer.merge",
        "customer",
        survivor.id,
        {"merged_from": loser.id, **old},
        {"merged_ids": merged_ids, "identities_moved": moved, "referral_dropped": dropped, **new},
    )
    await commit(session, f"customers {customer_id} and {from_id} changed at the same moment; retry")
    return await customer_out(session, survivor)


async def _check_mergeable(
    session: AsyncSession, actor: ActorRef, customer_id: str, row: Customer | None, side: str
) -> None:
    if row is not None and row.merged_into is not None:
        survivor = await store.customers.get(session, row.id)
        if survivor is None or not visible(actor, survivor):
            raise not_found(customer_id)
        raise Conflict(
            f"customer {customer_id} was already merged into {survivor.id}: merge {side} that record",
            merged_into=survivor.id,
        )
    if row is None or not visible(actor, row):
        raise not_found(customer_id)


async def _fill_gaps(session: AsyncSession, survivor: Customer, loser: Customer) -> None:
    if survivor.member_level is None and loser.member_level is not None:
        levels = await member_levels(session, survivor.region)
        if level_problem(loser.member_level, levels, survivor.region) is None:
            survivor.member_level = loser.member_level
    survivor.billing_currency = survivor.billing_currency or loser.billing_currency
    survivor.notes = survivor.notes or loser.notes
    survivor.consent = {**loser.consent, **survivor.consent}  # the survivor's answer wins per channel
    if survivor.referred_by is None:
        survivor.referred_by = loser.referred_by


async def _drop_self_referral(session: AsyncSession, survivor: Customer) -> str | None:
    """Clear the survivor's referrer when the referral chain comes back to the merged customer
    (one of its own records referred it, or a customer it referred did); the dropped id."""
    await session.flush()
    family = set(await store.customers.family(session, survivor.id))
    chain = await store.customers.referrer_chain(session, survivor.referred_by)
    if family.isdisjoint(chain):
        return None
    dropped, survivor.referred_by = survivor.referred_by, None
    return dropped


# --- orders ---


def money(amount: Decimal | None, currency: str | None) -> str | None:
    if amount is None:
        return None
    spec = CURRENCIES.get(currency or "")
    return format(amount.quantize(spec.quantum) if spec else store.statements.plain(amount), "f")


def order_out(row: CustomerOrder) -> OrderOut:
    return OrderOut(
        id=row.id or 0,
        customer_id=row.customer_id,
        source=row.source,
        external_ref=row.external_ref,
        placed_at=row.placed_at,
        status=row.status,
        amount=money(row.amount, row.currency),
        currency=row.currency,
        summary=row.summary,
        asset_id=row.asset_id,
    )


async def orders(session: AsyncSession, actor: ActorRef, customer_id: str, limit: int, cursor: str | None) -> OrderPage:
    """Orders of the customer and of every record merged into it, newest first."""
    row = await visible_customer(session, actor, customer_id)
    family = await store.customers.family(session, row.id)
    after = cursor_key(cursor, datetime, int)
    try:
        after = None if after is None else (after[0].astimezone(UTC), after[1])
    except OverflowError as exc:
        raise FieldInvalid("cursor", "malformed cursor: pass back next_cursor unchanged", location="query") from exc
    rows, next_cursor = await store.customers.orders_page(session, family, limit, after)
    return OrderPage(items=[order_out(o) for o in rows], next_cursor=next_cursor)


ORDER_FIELDS = ("placed_at", "status", "amount", "currency", "summary", "asset_id")


async def record_order(
    session: AsyncSession, actor: ActorRef, customer_id: str, body: OrderIn
) -> tuple[OrderOut, bool]:
    """Record an order, or bring a known one (same source and external_ref) up to date: a
    repeat with the same body changes nothing; ``True`` when the row is new. The orders of a
    registered business source (its code as ``source``, active or not) are written by its signed
    events only: staff could otherwise pre-create one on another customer, or overwrite what the
    source reported (422 on ``source``)."""
    row = await writable_customer(session, actor, customer_id)
    if await store.integrations.source(session, body.source) is not None:
        raise FieldInvalid(
            "source",
            f"{body.source!r} is a registered business source: its orders come from its signed events only",
            "integration_source",
        )
    family = await store.customers.family(session, row.id)
    if body.asset_id is not None:
        asset = await store.assets.get(session, body.asset_id)
        if asset is None or asset.customer_id not in family:
            raise FieldInvalid("asset_id", f"customer {customer_id} has no asset {body.asset_id!r}")
    values = {f: getattr(body, f) for f in ORDER_FIELDS}
    existing = await store.customers.order_by_ref(session, body.source, body.external_ref)
    if existing is None:
        inserted = await store.customers.insert_order_once(
            session,
            {"customer_id": row.id, "source": body.source, "external_ref": body.external_ref, "data": {}, **values},
        )
        existing = await store.customers.order_by_ref(session, body.source, body.external_ref)
        if existing is None:  # pragma: no cover - inserted or there already
            raise Conflict(f"order {body.source}/{body.external_ref} changed at the same moment; retry")
        if inserted:
            await commit(session, f"order {body.source}/{body.external_ref} was reported at the same moment; retry")
            return order_out(existing), True
    if existing.customer_id not in family:
        owner = await store.customers.get(session, existing.customer_id)
        named = f" of customer {owner.id}" if owner is not None and visible(actor, owner) else ""
        raise Conflict(f"order {body.source}/{body.external_ref} is an order{named}, not of {customer_id}")
    if any(getattr(existing, f) != v for f, v in values.items()):
        for f, v in values.items():
            setattr(existing, f, v)
        store.customers.save(session, existing)
        await commit(session, f"order {body.source}/{body.external_ref} changed at the same moment; retry")
    return order_out(existing), False
