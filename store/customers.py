"""Customers: every query on ``customer``, ``customer_identity`` and ``customer_order``.

A merged record keeps its row with ``merged_into`` pointing at the survivor (its tickets, assets
and orders stay where they were written; its identities move to the survivor, so resolving any
of them finds the survivor); ``get`` and ``resolve`` follow the pointer, and ``family`` names
the survivor with every record merged into it, so a customer's history reads across merges.
Rules (scope, validation, merging) are ``api/services/customers.py``'s.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.customer_tables import Customer, CustomerIdentity, CustomerOrder
from models.db import upsert_statement
from store import keyset

MAX_MERGE_DEPTH = 16  # merged_into chains are short (each merge points at a survivor); a bound against a loop
MAX_REFERRAL_DEPTH = 64  # how far ``referrer_chain`` walks (the referral graph has no cycle; a bound anyway)
# Rows per statement when looking many values up at once (identities, referral codes of an import).
LOOKUP_BATCH = 1_000
# The tables, for bulk statements (SQLModel's classes do not declare ``__table__`` to type checkers).
CUSTOMER = cast(sa.Table, Customer.__table__)  # type: ignore[attr-defined]
IDENTITY = cast(sa.Table, CustomerIdentity.__table__)  # type: ignore[attr-defined]
ORDER = cast(sa.Table, CustomerOrder.__table__)  # type: ignore[attr-defined]


async def get(session: AsyncSession, customer_id: str) -> Customer | None:
    """The customer, or the record it was merged into (following the chain)."""
    row = await session.get(Customer, customer_id)
    for _ in range(MAX_MERGE_DEPTH):
        if row is None or row.merged_into is None:
            return row
        row = await session.get(Customer, row.merged_into)
    return row


async def resolve(session: AsyncSession, kind: str, value: str) -> Customer | None:
    """The customer a (normalised) identity belongs to (``domain.identities.normalize`` first)."""
    q = select(CustomerIdentity.customer_id).where(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
    customer_id = (await session.exec(q)).first()
    return None if customer_id is None else await get(session, customer_id)


async def family(session: AsyncSession, customer_id: str) -> list[str]:
    """``customer_id`` and every record merged into it, directly or through another merge."""
    ids, frontier = [customer_id], [customer_id]
    for _ in range(MAX_MERGE_DEPTH):
        q = select(Customer.id).where(col(Customer.merged_into).in_(frontier))
        frontier = [i for i in (await session.exec(q)).all() if i not in ids]
        if not frontier:
            break
        ids += frontier
    return ids


async def flatten_merges(session: AsyncSession, merged_ids: list[str], survivor_id: str, now: datetime) -> None:
    """Point every record of ``merged_ids`` straight at ``survivor_id`` (chains stay one step long)."""
    change = sa.update(CUSTOMER).where(CUSTOMER.c.id.in_(merged_ids)).values(merged_into=survivor_id, updated_at=now)
    await session.exec(change)


async def referral_count(session: AsyncSession, customer_ids: list[str]) -> int:
    """How many customers were referred by this customer (any record of its family)."""
    q = (
        select(sa.func.count())
        .select_from(Customer)
        .where(col(Customer.referred_by).in_(customer_ids), col(Customer.merged_into).is_(None))
    )
    return int((await session.exec(q)).one())


# --- customers ---


async def get_row(session: AsyncSession, customer_id: str, *, lock: bool = False) -> Customer | None:
    """The record itself, merged or not (``lock``: held until the caller's transaction ends, read
    afresh)."""
    q = select(Customer).where(Customer.id == customer_id)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    return (await session.exec(q)).first()


async def lock_rows(session: AsyncSession, customer_ids: list[str]) -> dict[str, Customer]:
    """Lock several records in id order (two merges of the same pair never deadlock), read afresh."""
    q = (
        select(Customer)
        .where(col(Customer.id).in_(sorted(customer_ids)))
        .order_by(col(Customer.id))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in (await session.exec(q)).all()}


async def by_ids(session: AsyncSession, customer_ids: list[str]) -> dict[str, Customer]:
    """The records themselves (merged or not), in batches."""
    found: dict[str, Customer] = {}
    for i in range(0, len(customer_ids), LOOKUP_BATCH):
        q = select(Customer).where(col(Customer.id).in_(customer_ids[i : i + LOOKUP_BATCH]))
        found |= {row.id: row for row in (await session.exec(q)).all()}
    return found


def save(session: AsyncSession, row: Customer | CustomerIdentity | CustomerOrder) -> None:
    """A new or changed row, written with the caller's commit."""
    session.add(row)


async def by_referral_code(session: AsyncSession, code: str) -> Customer | None:
    """The customer whose referral code this is (following a merge to the survivor)."""
    holder = (await session.exec(select(Customer.id).where(Customer.referral_code == code))).first()
    return None if holder is None else await get(session, holder)


async def referral_holders(session: AsyncSession, codes: list[str]) -> dict[str, Customer]:
    """code → the customer holding it (a merged holder's survivor), for the codes that exist."""
    found: dict[str, Customer] = {}
    for i in range(0, len(codes), LOOKUP_BATCH):
        q = select(Customer).where(col(Customer.referral_code).in_(codes[i : i + LOOKUP_BATCH]))
        found |= {row.referral_code: row for row in (await session.exec(q)).all()}
    for code, row in found.items():
        if row.merged_into is not None:  # rare: one look-up per merged referrer
            survivor = await get(session, row.id)
            if survivor is not None:
                found[code] = survivor
    return found


async def referral_codes_taken(session: AsyncSession, codes: list[str]) -> set[str]:
    taken: set[str] = set()
    for i in range(0, len(codes), LOOKUP_BATCH):
        q = select(Customer.referral_code).where(col(Customer.referral_code).in_(codes[i : i + LOOKUP_BATCH]))
        taken |= set((await session.exec(q)).all())
    return taken


async def referrer_chain(session: AsyncSession, customer_id: str | None) -> list[str]:
    """Who referred ``customer_id``, who referred them, … (survivors' ids, at most
    ``MAX_REFERRAL_DEPTH``; stops at a repeat)."""
    chain: list[str] = []
    while customer_id is not None and len(chain) < MAX_REFERRAL_DEPTH:
        row = await get(session, customer_id)
        if row is None or row.id in chain:
            break
        chain.append(row.id)
        customer_id = row.referred_by
    return chain


async def search(
    session: AsyncSession,
    *,
    regions: list[str] | None,
    text: str | None = None,
    identities: Sequence[tuple[str, str]] = (),
    member_level: str | None = None,
    limit: int,
    after: tuple[str, str] | None = None,
) -> tuple[list[Customer], str | None]:
    """Customers not merged away, by (name, id), in ``regions`` (None: every region); ``text``:
    the name contains it (any case); ``identities``: holds every one of these (kind, normal form)."""
    q = select(Customer).where(col(Customer.merged_into).is_(None))
    if regions is not None:
        q = q.where(col(Customer.region).in_(regions))
    if text:
        q = q.where(sa.func.lower(Customer.name).contains(text.lower(), autoescape=True))
    for kind, value in identities:
        holder = select(CustomerIdentity.customer_id).where(
            CustomerIdentity.kind == kind, CustomerIdentity.value == value
        )
        q = q.where(col(Customer.id).in_(holder))
    if member_level is not None:
        q = q.where(Customer.member_level == member_level)
    if after is not None:
        q = q.where(keyset.after([col(Customer.name), col(Customer.id)], after))
    q = q.order_by(col(Customer.name), col(Customer.id)).limit(limit + 1)
    rows = list((await session.exec(q)).all())
    return keyset.page(rows, limit, lambda c: (c.name, c.id))


async def insert_many(session: AsyncSession, customers: list[dict[str, Any]], identities: list[dict[str, Any]]) -> None:
    """Bulk inserts in the caller's transaction (multi-row statements, not a round trip a row)."""
    conn = await session.connection()
    if customers:
        await conn.execute(sa.insert(CUSTOMER), customers)
    if identities:
        await conn.execute(sa.insert(IDENTITY), identities)


# --- identities ---


async def identities_of(session: AsyncSession, customer_ids: list[str]) -> list[CustomerIdentity]:
    """By customer, then kind and id."""
    if not customer_ids:
        return []
    q = (
        select(CustomerIdentity)
        .where(col(CustomerIdentity.customer_id).in_(customer_ids))
        .order_by(col(CustomerIdentity.customer_id), col(CustomerIdentity.kind), col(CustomerIdentity.id))
    )
    return list((await session.exec(q)).all())


async def identity(session: AsyncSession, identity_id: int) -> CustomerIdentity | None:
    return await session.get(CustomerIdentity, identity_id)


async def identity_owners(session: AsyncSession, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(kind, normal form) → the customer id holding it, for those of ``pairs`` someone holds."""
    by_kind: dict[str, list[str]] = {}
    for kind, value in pairs:
        by_kind.setdefault(kind, []).append(value)
    owners: dict[tuple[str, str], str] = {}
    for kind, values in sorted(by_kind.items()):
        for i in range(0, len(values), LOOKUP_BATCH):
            q = select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == kind, col(CustomerIdentity.value).in_(values[i : i + LOOKUP_BATCH])
            )
            owners |= {(kind, value): owner for value, owner in (await session.exec(q)).all()}
    return owners


async def delete_identity(session: AsyncSession, row: CustomerIdentity) -> None:
    await session.delete(row)


async def move_identities(session: AsyncSession, from_id: str, to_id: str) -> int:
    """Every identity of ``from_id`` now belongs to ``to_id`` (the caller commits); how many moved."""
    change = sa.update(IDENTITY).where(IDENTITY.c.customer_id == from_id).values(customer_id=to_id)
    done = await session.exec(change)
    return int(done.rowcount)


# --- orders ---


async def order_by_ref(session: AsyncSession, source: str, external_ref: str) -> CustomerOrder | None:
    q = select(CustomerOrder).where(CustomerOrder.source == source, CustomerOrder.external_ref == external_ref)
    return (await session.exec(q.execution_options(populate_existing=True))).first()


async def insert_order_once(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless ``(source, external_ref)`` exists (two reports at once: one row); whether
    this call inserted it."""
    add = upsert_statement(session.bind.dialect.name, ORDER).values(**values)  # type: ignore[union-attr]
    done = await session.exec(add.on_conflict_do_nothing(index_elements=["source", "external_ref"]))
    return bool(done.rowcount)


async def orders_page(
    session: AsyncSession, customer_ids: list[str], limit: int, after: tuple[datetime, int] | None = None
) -> tuple[list[CustomerOrder], str | None]:
    """Orders of any of ``customer_ids``, newest first (placed_at, id)."""
    q = select(CustomerOrder).where(col(CustomerOrder.customer_id).in_(customer_ids))
    if after is not None:
        q = q.where(keyset.before([col(CustomerOrder.placed_at), col(CustomerOrder.id)], after))
    q = q.order_by(col(CustomerOrder.placed_at).desc(), col(CustomerOrder.id).desc()).limit(limit + 1)
    rows = list((await session.exec(q)).all())
    return keyset.page(rows, limit, lambda o: (o.placed_at, o.id or 0))
