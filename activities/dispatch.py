"""``dispatch.decide``: who gets a task, and why — the roster from the database, the scoring
from ``domain/dispatch.py``.

The roster is every active person who covers the ticket's region; their load is the number
of open tickets the read model shows them holding. The scoring pool of a region is kept in
the worker until the roster revision moves (every write to people bumps it in the same
transaction, so the next decision sees a new person, leave or skill at once) or, as a
backstop for edits made straight in the database, for ``ROSTER_TTL_S``; the revision and the
loads are read on every call. Round robin keeps its position per node and region in
``dispatch_cursor``. ``bench/dispatch_activity.py`` measures the cost. The decision (ranked
candidates, per-criterion contributions, rejections, explanation) goes back to the workflow,
which records it.
"""

import logging
import time
from datetime import UTC, datetime

from temporalio import activity

from activities.resources import database
from domain.access import can_access_region
from domain.dispatch import CandidatePool, decide, first_available
from models import metrics
from models.calendar import BusinessCalendar
from models.dispatch import (
    Candidate,
    DispatchCall,
    DispatchDecision,
    DispatchRequest,
    GeoPoint,
    Period,
    Strategy,
)
from models.tables import Actor
from models.ticket import ActorRef
from store import people, tickets

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
        actors = await people.active_people(session)
    found: list[Candidate] = []
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
        found.append(person)
    return found, calendars


async def pool_for(region: str) -> CandidatePool:
    """The region's scoring pool (rebuilt when the roster revision moved, or after
    ``ROSTER_TTL_S``) with everyone's load as of now."""
    async with database().session() as session:
        revision = await people.roster_revision(session)
        loads = await tickets.loads(session)
    now = time.monotonic()
    cached = _pools.get(region)
    if cached is None or cached[1] != revision or now - cached[0] > ROSTER_TTL_S:
        candidates, calendars = await roster(region)
        cached = (now, revision, CandidatePool.build(candidates, calendars))
        _pools[region] = cached
    pool = cached[2]
    return pool.with_state(loads={cid: loads.get(cid, 0) for cid in pool.index})


def forget_rosters() -> None:
    """Drop the cached pools (tests that change a roster and dispatch at once)."""
    _pools.clear()


@activity.defn(name="dispatch.decide")
async def decide_assignee(call: DispatchCall) -> DispatchDecision:
    """The decision, its latency counted (``ticketflow_dispatch_decision_seconds``) by strategy
    ("named" for a choice among named people) and outcome."""
    started = time.perf_counter()
    decision = await _decide(call)
    strategy = "named" if call.named else decision.strategy.value
    metrics.DISPATCH_LATENCY.labels(strategy, decision.outcome.value).observe(time.perf_counter() - started)
    return decision


async def _decide(call: DispatchCall) -> DispatchDecision:
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
    """Round robin from where the rotation stands (``store.people.rotate`` locks it): two tickets
    dispatched at once get different people; a retry for the same ticket gets the same person."""
    return await people.rotate(
        database(), key, req.ticket_id, lambda start: decide(pool, req.model_copy(update={"round_robin_cursor": start}))
    )
