"""People: every query on ``actor`` (a person with their dispatch profile) and ``api_key`` (their
credentials, stored hashed), and on the two tables dispatch keeps about them — the
``roster_revision`` every write to people moves (``bump_roster_revision``, in the writer's
transaction) and ``dispatch_cursor`` (each round robin's position, ``rotate``).

Role, region and grant rules are the callers' (``api/services/people.py``, ``domain/``): the
JSON-text filters here are coarse, and callers check the lists themselves.
"""

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import Database, json_text_contains, upsert_statement
from models.dispatch import DispatchDecision
from models.tables import Actor, ApiKey, DispatchCursor, RosterRevision

SCAN_BATCH = 200  # rows ``batches`` reads per round


def mentions(column: Any, values: list[str], suffix: str = "") -> Any:
    """The JSON column's text names one of ``values`` (a coarse pre-filter: re-check the rows)."""
    return sa.or_(*(json_text_contains(column, json.dumps(v) + suffix) for v in values))


# --- people ---


async def get(session: AsyncSession, person_id: str, lock: bool = False) -> Actor | None:
    """``lock``: the row stays locked until the caller's transaction ends (PostgreSQL)."""
    return await session.get(Actor, person_id, with_for_update=lock)


def save(session: AsyncSession, row: Actor) -> None:
    """A new or changed person, written with the caller's commit (with ``bump_roster_revision``)."""
    session.add(row)


async def active_people(session: AsyncSession) -> list[Actor]:
    """Every active person, by id."""
    return list((await session.exec(select(Actor).where(col(Actor.active).is_(True)).order_by(col(Actor.id)))).all())


async def by_ids(session: AsyncSession, ids: list[str]) -> dict[str, Actor]:
    if not ids:
        return {}
    return {a.id: a for a in await session.exec(select(Actor).where(col(Actor.id).in_(ids)))}


async def ids(session: AsyncSession) -> list[str]:
    return list((await session.exec(select(Actor.id))).all())


async def batches(
    session: AsyncSession,
    *,
    team: str | None = None,
    active: bool | None = None,
    works_in: list[str] | None = None,
    role: str | None = None,
    skill: str | None = None,
    after: str | None = None,
) -> AsyncIterator[list[Actor]]:
    """People by id after ``after``, ``SCAN_BATCH`` at a time, until none are left. ``works_in``,
    ``role`` and ``skill`` filter on the JSON text only: the caller checks the lists."""
    q = select(Actor)
    if team is not None:
        q = q.where(col(Actor.team) == team)
    if active is not None:
        q = q.where(col(Actor.active).is_(active))
    if works_in is not None:
        q = q.where(mentions(Actor.regions, works_in))
    if role is not None:
        q = q.where(mentions(Actor.roles, [role]))
    if skill is not None:
        q = q.where(mentions(Actor.skills, [skill], ":"))
    while True:
        batch_q = q.where(col(Actor.id) > after) if after is not None else q
        batch = list((await session.exec(batch_q.order_by(col(Actor.id)).limit(SCAN_BATCH))).all())
        yield batch
        if len(batch) < SCAN_BATCH:
            return
        after = batch[-1].id


# --- API keys ---


def working(now: datetime) -> Any:
    """The SQL condition of a key that works at ``now`` (the person's ``active`` is checked apart)."""
    return sa.and_(
        col(ApiKey.revoked_at).is_(None), sa.or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > now)
    )


def add_key(session: AsyncSession, key: ApiKey) -> None:
    session.add(key)


async def key_and_person(session: AsyncSession, key_hash: str) -> tuple[ApiKey, Actor] | None:
    """The key with this hash and its person, working or not."""
    q = select(ApiKey, Actor).join(Actor, col(Actor.id) == col(ApiKey.actor_id)).where(col(ApiKey.key_hash) == key_hash)
    found = (await session.exec(q)).first()
    return None if found is None else (found[0], found[1])


async def get_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def keys_of(session: AsyncSession, person_id: str) -> list[ApiKey]:
    """Newest first, revoked and expired ones included."""
    q = select(ApiKey).where(col(ApiKey.actor_id) == person_id).order_by(col(ApiKey.created_at).desc())
    return list((await session.exec(q)).all())


async def working_key_ids(session: AsyncSession, person_id: str, now: datetime) -> list[str]:
    q = select(ApiKey.id).where(col(ApiKey.actor_id) == person_id, working(now)).order_by(col(ApiKey.id))
    return list((await session.exec(q)).all())


async def count_working_keys(session: AsyncSession, person_id: str, now: datetime) -> int:
    q = select(sa.func.count()).select_from(ApiKey).where(col(ApiKey.actor_id) == person_id, working(now))
    return (await session.exec(q)).one()


async def with_working_keys(session: AsyncSession, person_ids: list[str], now: datetime) -> set[str]:
    """Those of ``person_ids`` who hold a working key."""
    if not person_ids:
        return set()
    q = select(ApiKey.actor_id).where(col(ApiKey.actor_id).in_(person_ids), working(now))
    return set((await session.exec(q.distinct())).all())


async def working_keys_by_hash(session: AsyncSession, hashes: list[str], now: datetime) -> list[ApiKey]:
    q = select(ApiKey).where(col(ApiKey.key_hash).in_(hashes), working(now))
    return list((await session.exec(q)).all())


async def revoke_keys(session: AsyncSession, key_ids: list[str], now: datetime) -> int:
    """Revoke those of the keys not revoked yet (the caller commits); how many were."""
    table = ApiKey.__table__
    done = await session.exec(  # type: ignore[call-overload]
        sa.update(table).where(table.c.id.in_(key_ids), table.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return done.rowcount


# --- what dispatch keeps about people ---


async def bump_roster_revision(session: AsyncSession) -> None:
    """Run inside every transaction that changes people (profiles, absences): an upsert, so a
    missing row (a restored dump, a truncated table) is created, never skipped."""
    table = RosterRevision.__table__
    bump = (
        upsert_statement(session.bind.dialect.name, table)  # type: ignore[arg-type]
        .values(id=1, revision=1)
        .on_conflict_do_update(index_elements=["id"], set_={"revision": table.c.revision + 1})
    )
    await session.exec(bump)


async def roster_revision(session: AsyncSession) -> int:
    return (await session.exec(select(RosterRevision.revision).where(col(RosterRevision.id) == 1))).first() or 0


async def rotate(
    db: Database, key: str, ticket_id: str | None, pick: Callable[[str | None], DispatchDecision]
) -> DispatchDecision:
    """One round robin step, in one transaction with the cursor row locked, so two tickets
    dispatched at once get different people: ``pick(start)`` chooses after the person ``start``;
    a retry for the same ticket starts where the first attempt did, and moves nothing."""
    ensure = upsert_statement(db.engine.dialect.name, DispatchCursor.__table__).values(
        key=key, last_id="", updated_at=datetime.now(UTC)
    )
    async with db.session() as session:
        await session.exec(ensure.on_conflict_do_nothing(index_elements=["key"]))  # takes the write lock on SQLite
        cursor = (await session.exec(select(DispatchCursor).where(DispatchCursor.key == key).with_for_update())).one()
        repeat = cursor.last_ticket is not None and cursor.last_ticket == ticket_id
        start = cursor.prev_id if repeat else cursor.last_id
        decision = pick(start or None)
        if decision.chosen_id is not None and not repeat:
            cursor.prev_id, cursor.last_id = cursor.last_id, decision.chosen_id
            cursor.last_ticket, cursor.updated_at = ticket_id or None, datetime.now(UTC)
            session.add(cursor)
        await session.commit()
    return decision
