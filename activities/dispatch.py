"""``dispatch.decide``: who gets a task, and why — the roster from the database, the scoring
from ``domain/dispatch.py``.

The roster is every active person who covers the ticket's region; their load is the number
of open tickets the read model shows them holding. The scoring pool of a region is kept in
the worker until the roster revision moves (every write to people bumps it in the same
transaction, so the next decision sees a new person, leave or skill at once) or, as a
backstop for edits made straight in the database, for ``ROSTER_TTL_S``; the revision and the
loads are read on every call. Round robin keeps its position per
node and region in ``dispatch_cursor``. ``bench/dispatch_activity.py`` measures the cost. The decision (ranked candidates, per-criterion
contributions, rejections, explanation) goes back to the workflow, which records it.
"""

import logging
import time
from datetime import UTC, datetime

from sqlmodel import col, select
from temporalio import activity

from activities.resources import database
from domain.access import can_access_region
from domain.dispatch import CandidatePool, decide, first_available
from models.calendar import BusinessCalendar
from models.db import upsert_statement
from models.dispatch import (
    Candidate,
    DispatchCall,
    DispatchDecision,
    DispatchRequest,
    GeoPoint,
    Period,
    Strategy,
)
from models.tables import Actor, DispatchCursor, load_query, roster_revision_query
from models.ticket import ActorRef

log = logging.getLogger(__name__)
ROSTER_TTL_S = 300.0
_pools: dict[str, tuple[float, int, CandidatePool]] = {}  # region → (built at, roster revision, pool)


def candidate(actor: Actor, region: str) -> Candidate:
    """One person as dispatch sees them in ``region`` (their profile; loads are set per call)."""
    home = None
    if actor.home_lat is not None and actor.home_lon is not None:
        home = GeoPoint(lat=actor.home_lat, lon=actor.home_lon)
    return Candidate(
        id=actor.id,
        name=actor.name,
        region=region,
        team=actor.team or "",
        roles=list(actor.roles),
        skills=dict(actor.skills or {}),
        home=home,
        capacity=actor.capacity,
        available=actor.active,
        out_of_office=[Period.model_validate(p) for p in actor.out_of_office or []],
        calendar=f"person:{actor.id}" if actor.working_hours else None,
        seniority=min(max(actor.seniority, 1), 5),
        features=dict(actor.features or {}),
    )


async def roster(region: str) -> tuple[list[Candidate], dict[str, BusinessCalendar]]:
    """Every active person covering ``region`` (loads 0), and the working-hour calendars they
    name. A profile that does not validate is left out (and logged), never the whole region."""
    async with database().session() as session:
        actors = (await session.exec(select(Actor).where(col(Actor.active)).order_by(col(Actor.id)))).all()
    people: list[Candidate] = []
    calendars: dict[str, BusinessCalendar] = {}
    for a in actors:
        if not can_access_region(ActorRef(id=a.id, regions=list(a.regions)), region):
            continue
        try:
            person = candidate(a, region)
            if a.working_hours:
                calendars[f"person:{a.id}"] = BusinessCalendar.model_validate(a.working_hours)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("dispatch: profile of %s left out: %s", a.id, exc)
            continue
        people.append(person)
    return people, calendars


async def pool_for(region: str) -> CandidatePool:
    """The region's scoring pool (rebuilt when the roster revision moved, or after
    ``ROSTER_TTL_S``) with everyone's load as of now."""
    async with database().session() as session:
        revision = (await session.exec(roster_revision_query())).first() or 0
        loads = {assignee: n for assignee, n in await session.exec(load_query())}
    now = time.monotonic()
    cached = _pools.get(region)
    if cached is None or cached[1] != revision or now - cached[0] > ROSTER_TTL_S:
        people, calendars = await roster(region)
        cached = (now, revision, CandidatePool.build(people, calendars))
        _pools[region] = cached
    pool = cached[2]
    return pool.with_state(loads={cid: loads.get(cid, 0) for cid in pool.index})


def forget_rosters() -> None:
    """Drop the cached pools (tests that change a roster and dispatch at once)."""
    _pools.clear()


@activity.defn(name="dispatch.decide")
async def decide_assignee(call: DispatchCall) -> DispatchDecision:
    req = call.request
    if req.at is None:
        req = req.model_copy(update={"at": datetime.now(UTC)})
    pool = await pool_for(req.region)
    if call.named:
        return first_available(pool, req, call.named)
    if req.strategy is Strategy.ROUND_ROBIN and call.cursor_key is not None:
        return await _rotate(pool, req, call.cursor_key)
    return decide(pool, req)


async def _rotate(pool: CandidatePool, req: DispatchRequest, key: str) -> DispatchDecision:
    """Round robin in one transaction with the cursor row locked, so two tickets dispatched at
    once get different people; a retry for the same ticket gets the same person again."""
    db = database()
    ensure = upsert_statement(db.engine.dialect.name, DispatchCursor.__table__).values(
        key=key, last_id="", updated_at=datetime.now(UTC)
    )
    async with db.session() as session:
        await session.exec(ensure.on_conflict_do_nothing(index_elements=["key"]))  # takes the write lock on SQLite
        cursor = (await session.exec(select(DispatchCursor).where(DispatchCursor.key == key).with_for_update())).one()
        repeat = cursor.last_ticket is not None and cursor.last_ticket == req.ticket_id
        start = cursor.prev_id if repeat else cursor.last_id
        decision = decide(pool, req.model_copy(update={"round_robin_cursor": start or None}))
        if decision.chosen_id is not None and not repeat:
            cursor.prev_id, cursor.last_id = cursor.last_id, decision.chosen_id
            cursor.last_ticket, cursor.updated_at = req.ticket_id or None, datetime.now(UTC)
            session.add(cursor)
        await session.commit()
    return decision
