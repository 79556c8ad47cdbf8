"""Satisfaction surveys: every query on ``survey``, and the one write of a survey to the read
model's ``ticket`` row (its ``satisfaction``, which the projection never clears).

Activity-side functions (``insert_sent``, ``mark_reminded``, ``record_answer``, ``mark_expired``,
``link_follow_up``) take the ``Database`` and run their own transaction; each is idempotent: a
retry writes nothing twice and never moves a survey backwards (an answer over an expiry, an
expiry over an answer). API-side reads take the request's session. The CSAT report's aggregate
is ``store/reports.py``'s ``csat``.
"""

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import Database, upsert_statement
from models.survey_tables import Survey
from models.tables import Ticket

SURVEY = cast(sa.Table, Survey.__table__)  # type: ignore[attr-defined]
SENT, ANSWERED, EXPIRED = "sent", "answered", "expired"


# --- the workflow's writes ---


async def insert_sent(db: Database, values: dict[str, Any]) -> Survey:
    """The survey's row as it is sent; a second insert for the ticket changes nothing. The row as stored."""
    insert = upsert_statement(db.engine.dialect.name, SURVEY).values(**values)
    async with db.engine.begin() as conn:
        await conn.execute(insert.on_conflict_do_nothing(index_elements=["ticket_id"]))
    async with db.session() as session:
        row = await get(session, values["ticket_id"])
    assert row is not None
    return row


async def set_delivery(db: Database, ticket_id: str, delivery: str) -> None:
    """How asking the customer went (the outbox's outcome)."""
    stmt = sa.update(SURVEY).where(SURVEY.c.ticket_id == ticket_id).values(delivery=delivery)
    async with db.engine.begin() as conn:
        await conn.execute(stmt)


async def mark_reminded(db: Database, ticket_id: str, at: datetime) -> None:
    """The reminder's time, once."""
    stmt = (
        sa.update(SURVEY).where(SURVEY.c.ticket_id == ticket_id, SURVEY.c.reminded_at.is_(None)).values(reminded_at=at)
    )
    async with db.engine.begin() as conn:
        await conn.execute(stmt)


async def record_answer(
    db: Database,
    ticket_id: str,
    *,
    rating: int,
    comment: str | None,
    answers: dict[str, Any],
    at: datetime,
    via: str,
    by: str,
    update_id: str,
) -> None:
    """The answer on a survey still waiting for one, and the rating on the ticket's row, in one
    transaction. A retry after it committed finds the survey answered and changes nothing."""
    answer = (
        sa.update(SURVEY)
        .where(SURVEY.c.ticket_id == ticket_id, SURVEY.c.status == SENT)
        .values(
            status=ANSWERED,
            rating=rating,
            comment=comment,
            answers=answers,
            answered_at=at,
            answered_via=via,
            answered_by=by,
            answer_update_id=update_id,
        )
    )
    ticket = cast(sa.Table, Ticket.__table__)  # type: ignore[attr-defined]
    async with db.engine.begin() as conn:
        if (await conn.execute(answer)).rowcount:
            await conn.execute(sa.update(ticket).where(ticket.c.id == ticket_id).values(satisfaction=rating))


async def mark_expired(db: Database, ticket_id: str) -> None:
    """A survey nobody answered in time; an answered one stays answered."""
    stmt = sa.update(SURVEY).where(SURVEY.c.ticket_id == ticket_id, SURVEY.c.status == SENT).values(status=EXPIRED)
    async with db.engine.begin() as conn:
        await conn.execute(stmt)


async def link_follow_up(db: Database, ticket_id: str, follow_up_ticket: str) -> None:
    stmt = sa.update(SURVEY).where(SURVEY.c.ticket_id == ticket_id).values(follow_up_ticket=follow_up_ticket)
    async with db.engine.begin() as conn:
        await conn.execute(stmt)


# --- reads ---


async def get(session: AsyncSession, ticket_id: str, fresh: bool = False) -> Survey | None:
    """The ticket's survey; ``fresh`` reads it again (its workflow may have moved it)."""
    q = select(Survey).where(col(Survey.ticket_id) == ticket_id)
    if fresh:
        q = q.execution_options(populate_existing=True)
    return (await session.exec(q)).first()
