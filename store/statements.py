"""Statements and price rules: every query on ``statement`` (one settlement of a ticket, written
once per ``(ticket_id, ticket_version, status)``) and ``price_rules`` (published versions of a
region's rules, at most one active), and how a stored statement's figures read back — amounts
at the currency's minor unit, the budget limit — for the settle activity and the API alike.

Pricing itself is ``domain/pricing``; who may read or publish what is ``api/services/settlement.py``'s.
"""

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import upsert_statement
from models.pricing import CURRENCIES
from models.settlement import SettlementKind
from models.settlement_tables import PriceRules, StatementRow

_KEY = ["ticket_id", "ticket_version", "status"]


# --- statements ---


async def find(session: AsyncSession, ticket_id: str, version: int, kind: SettlementKind) -> StatementRow | None:
    q = select(StatementRow).where(
        StatementRow.ticket_id == ticket_id, StatementRow.ticket_version == version, StatementRow.status == kind.value
    )
    return (await session.exec(q)).first()


async def insert_once(session: AsyncSession, values: dict[str, Any]) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` on the statement's key: the first attempt's row wins
    (the caller commits, then reads it back with ``find``)."""
    insert = upsert_statement(session.bind.dialect.name, StatementRow.__table__).values(**values)
    await session.exec(insert.on_conflict_do_nothing(index_elements=_KEY))  # type: ignore[call-overload]


async def pre_settlement_for(session: AsyncSession, ticket_id: str, version: int) -> StatementRow | None:
    """The pre-settlement a final settlement is checked against: the same version's, else the
    latest earlier one."""
    q = (
        select(StatementRow)
        .where(
            StatementRow.ticket_id == ticket_id,
            StatementRow.status == SettlementKind.PRE_SETTLEMENT.value,
            StatementRow.ticket_version <= version,
        )
        .order_by(col(StatementRow.ticket_version).desc())
        .limit(1)
    )
    return (await session.exec(q)).first()


async def of_ticket(session: AsyncSession, ticket_id: str, kind: SettlementKind | None = None) -> StatementRow | None:
    """The ticket's latest final statement, else its latest pre-settlement (or the latest of ``kind``)."""
    q = select(StatementRow).where(StatementRow.ticket_id == ticket_id)
    if kind is not None:
        q = q.where(StatementRow.status == kind.value)
    # 'final' sorts before 'pre_settlement': finals first, then the highest version.
    q = q.order_by(col(StatementRow.status), col(StatementRow.ticket_version).desc())
    return (await session.exec(q.limit(1))).first()


def _selecting(
    q: Any,
    *,
    region: str | None,
    regions: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    status: str | None,
) -> Any:
    """``q`` narrowed to the statements the filter selects, oldest first (then by id): the one
    selection both the list and the export read."""
    if region is not None:
        q = q.where(StatementRow.region == region)
    if regions is not None:
        q = q.where(col(StatementRow.region).in_(regions))
    if start is not None:
        q = q.where(col(StatementRow.created_at) >= start)
    if end is not None:
        q = q.where(col(StatementRow.created_at) < end)
    if status is not None:
        q = q.where(StatementRow.status == status)
    return q.order_by(col(StatementRow.created_at), col(StatementRow.id))


async def matching(
    session: AsyncSession,
    *,
    region: str | None,
    regions: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    status: str | None,
    limit: int | None = None,
    offset: int = 0,
) -> list[StatementRow]:
    """Oldest first (then by id). ``regions`` None: every region; ``status`` None: both kinds."""
    q = _selecting(select(StatementRow), region=region, regions=regions, start=start, end=end, status=status)
    if limit is not None:
        q = q.limit(limit).offset(offset)
    return list((await session.exec(q)).all())


# What the reconciliation export reads of a statement: its figures, never the statement's JSON.
EXPORT_COLUMNS = (
    "id",
    "ticket_id",
    "ticket_version",
    "status",
    "region",
    "ticket_type",
    "created_at",
    "currency",
    "net",
    "tax",
    "total",
)
EXPORT_BATCH = 1_000


async def stream_matching(
    session: AsyncSession,
    *,
    region: str | None,
    regions: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    status: str | None,
    batch: int = EXPORT_BATCH,
) -> AsyncIterator[Sequence[sa.Row[Any]]]:
    """The statements ``matching`` selects, in the same order, as rows of ``EXPORT_COLUMNS``,
    ``batch`` rows at a time: one query read through a server-side cursor (PostgreSQL: a named
    cursor; SQLite: the cursor stepped as rows are fetched), so memory holds one batch whatever
    the number of rows. The rows come from one snapshot (one statement) on PostgreSQL. The
    session's connection stays checked out until the iterator is exhausted or closed."""
    table = StatementRow.__table__  # type: ignore[attr-defined]
    q = sa.select(*(table.c[name] for name in EXPORT_COLUMNS))
    q = _selecting(q, region=region, regions=regions, start=start, end=end, status=status)
    result = await session.stream(q.execution_options(yield_per=batch))
    try:
        async for rows in result.partitions():
            yield rows
            del rows  # not kept alive while the next batch is fetched
    finally:
        await result.close()


# --- price rules ---


async def active_rules(session: AsyncSession, region: str) -> PriceRules | None:
    q = select(PriceRules).where(PriceRules.region == region, col(PriceRules.active).is_(True))
    return (await session.exec(q)).first()


async def rules_version(session: AsyncSession, region: str, version: str) -> PriceRules | None:
    q = select(PriceRules).where(PriceRules.region == region, PriceRules.version == version)
    return (await session.exec(q)).first()


async def rule_versions(session: AsyncSession, region: str) -> list[PriceRules]:
    """Oldest first."""
    q = select(PriceRules).where(PriceRules.region == region).order_by(col(PriceRules.created_at), col(PriceRules.id))
    return list((await session.exec(q)).all())


async def activate_rules(session: AsyncSession, row: PriceRules) -> None:
    """``row`` becomes its region's only active version (the caller commits)."""
    table = PriceRules.__table__
    await session.exec(  # type: ignore[call-overload]
        sa.update(table).where(table.c.region == row.region, table.c.active.is_(True)).values(active=False)
    )
    session.add(row)


# --- a stored statement's figures, as the activity and the API answer them ---


def in_currency(value: Decimal | None, currency: str) -> Decimal | None:
    """A stored amount (NUMERIC(18, 4): ``123.5100``) shown at the currency's minor unit
    (``123.51``) when that loses nothing, else without trailing zeros."""
    if value is None:
        return None
    spec = CURRENCIES.get(currency)
    if spec is not None and value == value.quantize(spec.quantum):
        return value.quantize(spec.quantum)
    return plain(value)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros, never in exponent notation (``10.0000`` → ``10``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def budget_check(
    total: Decimal, budget: Decimal | None, tolerance_percent: Decimal | None
) -> tuple[bool, Decimal | None]:
    """``(over, limit)``: over when ``total > budget × (1 + tolerance / 100)``, computed exactly."""
    if budget is None:
        return False, None
    with localcontext() as ctx:
        ctx.prec = 64  # budget ≤ 18 digits, tolerance ≤ 9: the product is exact
        limit = budget * (100 + (tolerance_percent or 0)) / 100
    return total > limit, limit


def budget_reason(row: StatementRow, limit: Decimal | None) -> str | None:
    if not row.over_budget or row.budget is None or limit is None:
        return None
    cur = row.currency
    total, budget = in_currency(row.total, cur), in_currency(row.budget, cur)
    tolerance = plain(row.budget_tolerance_percent or Decimal(0))
    allowed = f"the budget {budget} {cur}"
    if tolerance:
        allowed += f" + {tolerance} % tolerance = {in_currency(limit, cur)} {cur}"
    return f"total {total} {cur} exceeds {allowed} by {in_currency(row.total - limit, cur)} {cur}"
