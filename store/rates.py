"""Exchange rates: every query on ``exchange_rate`` — rows are appended, never changed, and a
settlement in another currency than the price list takes ``rate_snapshot`` (the newest row of
each pair at that moment) as the rates it prices with. Who may add a rate is
``api/services/assets.py``'s; the pricing engine reads the snapshot (docs/assets.md).
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.customer_tables import ExchangeRateRow
from models.pricing import ExchangeRate, RateSnapshot

MAX_PAIRS = 1_000  # currency pairs a snapshot may hold (the engine knows eight currencies: 56 pairs)


def add(session: AsyncSession, row: ExchangeRateRow) -> None:
    """Written with the caller's commit; a second row for the same pair and ``as_of`` violates
    ``uq_exchange_rate_pair_as_of``."""
    session.add(row)


async def latest_rates(session: AsyncSession, at: datetime | None = None) -> list[ExchangeRateRow]:
    """The newest row of each (base, quote) pair whose ``as_of`` is not after ``at`` (default:
    now), by pair. One query."""
    at = at or datetime.now(UTC)
    newest = (
        select(ExchangeRateRow.base, ExchangeRateRow.quote, sa.func.max(ExchangeRateRow.as_of).label("as_of"))
        .where(col(ExchangeRateRow.as_of) <= at)
        .group_by(col(ExchangeRateRow.base), col(ExchangeRateRow.quote))
        .subquery()
    )
    q = (
        select(ExchangeRateRow)
        .join(
            newest,
            sa.and_(
                col(ExchangeRateRow.base) == newest.c.base,
                col(ExchangeRateRow.quote) == newest.c.quote,
                col(ExchangeRateRow.as_of) == newest.c.as_of,
            ),
        )
        .order_by(col(ExchangeRateRow.base), col(ExchangeRateRow.quote))
        .limit(MAX_PAIRS)
    )
    return list((await session.exec(q)).all())


async def rate_snapshot(session: AsyncSession, taken_at: datetime) -> RateSnapshot:
    """The rates a settlement taken at ``taken_at`` prices with: ``latest_rates`` then, as the
    engine's ``RateSnapshot`` (its ``source`` names the rows' sources)."""
    rows = await latest_rates(session, taken_at)
    sources = sorted({r.source for r in rows if r.source})
    return RateSnapshot(
        taken_at=taken_at,
        source=", ".join(sources)[:200] or "exchange_rate",
        rates=tuple(ExchangeRate(base=r.base, quote=r.quote, rate=r.rate) for r in rows),
    )
