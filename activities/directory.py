"""Directory look-ups for the workflows: role or group members of a region, an actor's manager,
the open tickets a person holds."""

from temporalio import activity

from activities.resources import database
from domain.access import can_access_region
from models.directory import PeopleQuery, PeopleResult
from models.ticket import ActorRef
from store import people, tickets


@activity.defn(name="directory.resolve_people")
async def resolve_people(query: PeopleQuery) -> PeopleResult:
    async with database().session() as session:
        if query.manager_of:  # the first active manager up the chain
            actor, seen = await people.get(session, query.manager_of), {query.manager_of}
            while actor is not None and actor.manager_id and actor.manager_id not in seen:
                seen.add(actor.manager_id)
                actor = await people.get(session, actor.manager_id)
                if actor is not None and actor.active:
                    return PeopleResult(ids=[actor.id])
            return PeopleResult(ids=[])
        rows = await people.active_people(session)
    found = []
    for a in rows:
        if query.role and query.role not in a.roles:
            continue
        if query.group and query.group not in a.groups:
            continue
        if query.region and not can_access_region(ActorRef(id=a.id, regions=list(a.regions)), query.region):
            continue
        found.append(a.id)
    return PeopleResult(ids=found)


@activity.defn(name="directory.held_tickets")
async def held_tickets(person_id: str) -> list[str]:
    """Open tickets where ``person_id`` holds a task or sits on an approval (read model)."""
    async with database().session() as session:
        return await tickets.held_by(session, person_id)


@activity.defn(name="directory.is_active")
async def is_active(person_id: str) -> bool:
    """Whether ``person_id`` is an active person (a ticket checks a departure it is told of)."""
    async with database().session() as session:
        actor = await people.get(session, person_id)
        return actor is not None and actor.active
