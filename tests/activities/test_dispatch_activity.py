"""The dispatch.decide activity against the database: round robin under retries, bad profiles."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from activities.dispatch import decide_assignee, forget_rosters
from api.services.people import add_absence
from models.db import Database
from models.dispatch import DispatchCall, DispatchRequest, Strategy
from models.people import Absence
from models.tables import Actor, RosterRevision
from models.ticket import ActorRef
from store.people import bump_roster_revision, roster_revision


async def _region(db: Database, *people: dict) -> str:
    region = f"r{uuid.uuid4().hex[:8]}"
    async with db.session() as session:
        for p in people:
            session.add(Actor(name=p["id"], roles=["engineer"], regions=[region], **p))
        await session.commit()
    forget_rosters()
    return region


def _call(region: str, ticket: str) -> DispatchCall:
    req = DispatchRequest(ticket_id=ticket, region=region, roles=["engineer"], strategy=Strategy.ROUND_ROBIN,
                          at=datetime.now(UTC))  # fmt: skip
    return DispatchCall(request=req, cursor_key=f"{region}:t:visit")


async def test_round_robin_moves_once_per_ticket_even_when_the_activity_is_retried(db: Database):
    region = await _region(db, {"id": "rr-a"}, {"id": "rr-b"}, {"id": "rr-c"})
    first = await decide_assignee(_call(region, "T1"))
    again = await decide_assignee(_call(region, "T1"))  # a retry of the same activity
    second = await decide_assignee(_call(region, "T2"))
    third = await decide_assignee(_call(region, "T3"))
    fourth = await decide_assignee(_call(region, "T4"))
    assert [first.chosen_id, again.chosen_id, second.chosen_id, third.chosen_id, fourth.chosen_id] == [
        "rr-a", "rr-a", "rr-b", "rr-c", "rr-a"
    ]  # fmt: skip


async def test_a_broken_profile_is_left_out_not_the_whole_region(db: Database):
    bad, ok = f"bad-{uuid.uuid4().hex[:6]}", f"ok-{uuid.uuid4().hex[:6]}"
    region = await _region(db, {"id": bad, "working_hours": {"timezone": "Mars/Olympus"}}, {"id": ok})
    decision = await decide_assignee(DispatchCall(request=DispatchRequest(region=region, roles=["engineer"])))
    assert decision.chosen_id == ok and decision.qualified == 1  # the broken profile is not in the pool


async def test_a_change_through_people_reaches_the_next_decision_at_once(db: Database):
    """The roster is cached per worker, but a write through the people service bumps the
    roster revision in its transaction: the next decision rebuilds it, with no TTL to wait."""
    a, b = f"rv-a-{uuid.uuid4().hex[:6]}", f"rv-b-{uuid.uuid4().hex[:6]}"
    region = await _region(db, {"id": a, "skills": {"hvac": 5}}, {"id": b, "skills": {"hvac": 1}})
    call = DispatchCall(request=DispatchRequest(region=region, roles=["engineer"], required_skills={"hvac": 1}))
    assert (await decide_assignee(call)).chosen_id == a  # the better skill level wins
    async with db.session() as session:  # edited behind the service's back: the cache stands
        row = await session.get(Actor, a)
        row.active = False
        session.add(row)
        await session.commit()
    assert (await decide_assignee(call)).chosen_id == a
    async with db.session() as session:
        row = await session.get(Actor, a)
        row.active = True
        session.add(row)
        await session.commit()
    now = datetime.now(UTC)
    async with db.session() as session:  # a goes on leave through the service
        me = ActorRef(id=a, roles=["engineer"], regions=[region])
        await add_absence(session, me, a, Absence(start=now - timedelta(hours=1), end=now + timedelta(days=2)))
    decision = await decide_assignee(call)
    assert decision.chosen_id == b and a not in [c.id for c in decision.ranked], decision


async def test_the_roster_revision_row_comes_back_if_it_goes_missing(db: Database):
    """The bump is an upsert: with the row gone (a restored dump), a change still invalidates."""
    async with db.session() as session:
        before = await roster_revision(session)
        await session.exec(sa.delete(RosterRevision))
        await bump_roster_revision(session)
        await bump_roster_revision(session)
        assert await roster_revision(session) == 2
        # Forward again, past where it was: other tests' cached rosters must not match by chance.
        await session.exec(sa.update(RosterRevision).values(revision=before + 10))
        await session.commit()
