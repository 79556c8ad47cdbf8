"""People and teams: the roster with each person's dispatch profile, scoped by region.

Reads: a caller sees the people who work in a region they can access (people of every
region, ``["*"]``, are seen by all); anyone else is ``NotFound``. Naming a region outside
the caller's scope in a filter is ``Forbidden``, as creating a ticket there is.

Machine accounts (``channel`` gateways) do not read the roster. Personal data — home, absences,
whether a key exists — is shown to the person, ``admin`` and ``hr`` (absences also to the
person's own manager); others get it null or empty, named in ``redacted``.

Writes need ``admin`` or ``hr`` and the caller's scope must cover every region of the person,
before and after the change. Only an ``admin`` changes an admin. Roles are given and taken
following ``domain/roles.py``, and so are the regions of a person holding a role the caller may
not give (moving a supervisor is giving them another region); nobody changes their own roles,
regions or manager. People are
never deleted, only deactivated (which revokes their API keys, ``api/services/api_keys.py``).
Every change is recorded in the audit log, in the transaction of the change.
"""

from collections import Counter, defaultdict
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

import store.keyset
import store.people
import store.regions
import store.tickets
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound, ProblemList, ServiceUnavailable
from api.services import audit
from api.services.paging import cursor_key
from domain import roles as grants
from domain.access import ALL_REGIONS, can_access_region
from models.people import (
    Absence,
    AbsenceOut,
    PersonCreate,
    PersonFields,
    PersonOut,
    PersonPage,
    PersonPatch,
    Released,
    TeamManager,
    TeamOut,
)
from models.tables import Actor
from models.ticket import ActorRef, PersonLeftInput
from workflows import person_left
from workflows.person_left import PersonLeftWorkflow

WRITERS = frozenset({grants.ADMIN, grants.HR})
ADMIN = grants.ADMIN
# Personal fields: shown to the person and WRITERS only (absences also to the person's manager).
HOME = ("home_lat", "home_lon")
ABSENCES = "out_of_office"
KEYS = "has_api_key"
# A change to these on oneself is refused (they decide what one may do, and whose approval counts).
NOT_ON_ONESELF = ("roles", "regions", "manager_id")


# --- scope ---


def _visible(actor: ActorRef, regions: list[str]) -> bool:
    """A person is visible to callers of any region they work in; global people to everyone."""
    if ALL_REGIONS in actor.regions or ALL_REGIONS in regions:
        return True
    return any(r in actor.regions for r in regions)


def _covers(actor: ActorRef, regions: list[str]) -> bool:
    """The caller may manage people of all these regions (``"*"`` needs a global caller)."""
    return all(can_access_region(actor, r) for r in regions)


def _require_roster_reader(actor: ActorRef) -> None:
    if grants.is_machine(actor.roles):
        raise Forbidden(f"actor {actor.id!r} is a machine account: it does not read the roster")


def _require_writer(actor: ActorRef) -> None:
    if not WRITERS.intersection(actor.roles):
        raise Forbidden(f"actor {actor.id!r} may not change people (roles: {', '.join(sorted(WRITERS))})")


async def _visible_row(session: AsyncSession, actor: ActorRef, person_id: str, lock: bool = False) -> Actor:
    row = await store.people.get(session, person_id, lock)
    if row is None or not _visible(actor, list(row.regions)):
        raise NotFound(f"person {person_id} not found")
    return row


async def _writable_row(session: AsyncSession, actor: ActorRef, person_id: str, lock: bool = False) -> Actor:
    _require_writer(actor)
    row = await _visible_row(session, actor, person_id, lock)
    if not _covers(actor, list(row.regions)):
        raise Forbidden(f"actor {actor.id!r} may not change {person_id!r}: they work outside the caller's regions")
    if ADMIN in row.roles and ADMIN not in actor.roles:
        raise Forbidden(f"only an admin may change {person_id!r}, who is an admin")
    return row


def _invalid(loc: list[str | int], msg: str, type_: str) -> ProblemList:
    return ProblemList([{"loc": ["body", *loc], "msg": msg, "type": type_}])


# --- output ---


def _hidden(viewer: ActorRef, row: Actor) -> list[str]:
    """The personal fields ``viewer`` may not see of ``row``."""
    if viewer.id == row.id or not WRITERS.isdisjoint(viewer.roles):
        return []
    return [*HOME, KEYS] if row.manager_id == viewer.id else [*HOME, ABSENCES, KEYS]


def _out(row: Actor, load: int, viewer: ActorRef, has_key: bool) -> PersonOut:
    hidden = _hidden(viewer, row)
    return PersonOut(
        id=row.id,
        name=row.name,
        roles=list(row.roles),
        regions=list(row.regions),
        groups=list(row.groups),
        team=row.team,
        manager_id=row.manager_id,
        active=row.active,
        skills=dict(row.skills),
        home_lat=None if "home_lat" in hidden else row.home_lat,
        home_lon=None if "home_lon" in hidden else row.home_lon,
        capacity=row.capacity,
        seniority=row.seniority,
        working_hours=row.working_hours,
        out_of_office=[] if ABSENCES in hidden else [AbsenceOut.model_validate(p) for p in row.out_of_office],
        features=dict(row.features),
        has_api_key=None if KEYS in hidden else has_key,
        load=load,
        redacted=hidden,
    )


async def _one_out(session: AsyncSession, row: Actor, viewer: ActorRef) -> PersonOut:
    load = (await store.tickets.loads(session, [row.id])).get(row.id, 0)
    return _out(row, load, viewer, row.id in await store.people.with_working_keys(session, [row.id], datetime.now(UTC)))


# --- reads ---


@dataclass
class PeopleFilter:
    region: str | None = None  # works there (global people included)
    role: str | None = None
    team: str | None = None
    skill: str | None = None  # has the skill, any level
    active: bool | None = None  # None: both


def _matches(row: Actor, actor: ActorRef, f: PeopleFilter) -> bool:
    if not _visible(actor, list(row.regions)):
        return False
    if f.region is not None and not (f.region in row.regions or ALL_REGIONS in row.regions):
        return False
    if f.role is not None and f.role not in row.roles:
        return False
    return f.skill is None or f.skill in row.skills


async def list_people(
    session: AsyncSession, actor: ActorRef, f: PeopleFilter, limit: int, cursor: str | None
) -> PersonPage:
    """By id; keyset pagination on the id (stable while people are added)."""
    _require_roster_reader(actor)
    if f.region is not None and not can_access_region(actor, f.region):
        raise Forbidden(f"actor {actor.id!r} may not list people of region {f.region!r}")
    regions = [f.region] if f.region is not None else (None if ALL_REGIONS in actor.regions else actor.regions)
    after = cursor_key(cursor, str)
    found: list[Actor] = []
    batches = store.people.batches(
        session,
        team=f.team,
        active=f.active,
        works_in=None if regions is None else [*regions, ALL_REGIONS],
        role=f.role,
        skill=f.skill,
        after=after[0] if after else None,
    )
    async with aclosing(batches):
        async for batch in batches:  # until the page and one more are found
            found.extend(r for r in batch if _matches(r, actor, f))
            if len(found) > limit:
                break
    rows, next_cursor = store.keyset.page(found, limit, lambda r: (r.id,))
    ids = [r.id for r in rows]
    load = await store.tickets.loads(session, ids)
    keyed = await store.people.with_working_keys(session, ids, datetime.now(UTC))
    return PersonPage(items=[_out(r, load.get(r.id, 0), actor, r.id in keyed) for r in rows], next_cursor=next_cursor)


async def get_person(session: AsyncSession, actor: ActorRef, person_id: str) -> PersonOut:
    if person_id != actor.id:
        _require_roster_reader(actor)
    return await _one_out(session, await _visible_row(session, actor, person_id), actor)


async def list_teams(session: AsyncSession, actor: ActorRef) -> list[TeamOut]:
    """Primary teams and groups of the active people the caller can see."""
    _require_roster_reader(actor)
    people = [p for p in await store.people.active_people(session) if _visible(actor, list(p.regions))]
    members: dict[tuple[str, str], list[Actor]] = defaultdict(list)
    for p in people:
        if p.team:
            members[("team", p.team)].append(p)
        for g in dict.fromkeys(p.groups):
            members[("group", g)].append(p)
    teams = []
    for (kind, name), group in sorted(members.items(), key=lambda kv: (kv[0][0] != "team", kv[0][1])):
        ids = {p.id for p in group}
        per_region: Counter[str] = Counter()
        for p in group:
            per_region.update(r for r in dict.fromkeys(p.regions) if r == ALL_REGIONS or can_access_region(actor, r))
        bosses = Counter(p.manager_id for p in group if p.manager_id and p.manager_id not in ids)
        teams.append(
            TeamOut(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                members=len(group),
                regions=dict(sorted(per_region.items())),
                managers=[TeamManager(id=m, members=n) for m, n in sorted(bosses.items(), key=lambda x: (-x[1], x[0]))],
            )
        )
    return teams


# --- writes ---


async def _check_references(
    session: AsyncSession, actor: ActorRef, person_id: str, body: PersonFields, manager_before: str | None = None
) -> None:
    """Regions exist and are the caller's; the manager exists, heads no cycle and, when it changes,
    is one the caller may set (``domain/roles.py``: the manager link routes approvals)."""
    for i, code in enumerate(body.regions):
        if code != ALL_REGIONS and await store.regions.get(session, code) is None:
            raise _invalid(["regions", i], f"unknown region {code!r}", "unknown_region")
    if not _covers(actor, body.regions):
        raise Forbidden(f"actor {actor.id!r} may not place people in regions {body.regions}")
    if body.manager_id is None:
        return
    if body.manager_id == person_id:
        raise _invalid(["manager_id"], "a person cannot be their own manager", "manager_cycle")
    manager = await store.people.get(session, body.manager_id)
    if manager is None:
        raise _invalid(["manager_id"], f"unknown person {body.manager_id!r}", "unknown_manager")
    if body.manager_id != manager_before and not grants.may_set_manager(actor.roles, manager.roles):
        raise Forbidden(
            f"actor {actor.id!r} may not make {body.manager_id!r} anyone's manager: a manager decides "
            "approvals, so it must hold a managing role (admins may set any)"
        )
    chain, seen, current = [body.manager_id], {body.manager_id}, manager.manager_id
    while current is not None and current not in seen:
        chain.append(current)
        if current == person_id:
            raise _invalid(
                ["manager_id"], f"{body.manager_id!r} reports to {person_id!r} ({' → '.join(chain)})", "manager_cycle"
            )
        seen.add(current)
        row = await store.people.get(session, current)
        current = row.manager_id if row is not None else None


def _check_grants(actor: ActorRef, person_id: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Roles follow the grant table (``domain/roles.py``), both ways, and so do the regions of
    whoever holds a role the caller may not give; nobody changes their own roles, regions or manager."""
    if person_id == actor.id:
        changed = [f for f in NOT_ON_ONESELF if before.get(f) != after.get(f)]
        if changed:
            raise Forbidden(f"nobody changes their own {', '.join(changed)}: ask an admin (or hr)")
    refused = grants.refused_grants(actor.roles, before.get("roles", []), after.get("roles", []))
    if not refused and before and before.get("regions") != after.get("regions"):
        refused = sorted(r for r in set(after.get("roles", [])) if not grants.may_grant(actor.roles, r))
    if refused:
        raise Forbidden(
            f"actor {actor.id!r} may not give or take the role(s) {', '.join(refused)} "
            "(see the grant table in docs/people.md)",
            roles=refused,
        )


def _check_not_self_deactivation(actor: ActorRef, person_id: str, active: bool) -> None:
    if person_id == actor.id and not active:
        raise Conflict("you cannot deactivate yourself")


async def _commit(session: AsyncSession, conflict: str) -> None:
    """Commit a change to people, with the roster revision that tells dispatch workers."""
    try:
        await store.people.bump_roster_revision(session)
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(conflict) from exc


async def create_person(session: AsyncSession, actor: ActorRef, body: PersonCreate) -> PersonOut:
    _require_writer(actor)
    if await store.people.get(session, body.id) is not None:
        raise Conflict(f"person {body.id!r} already exists")
    await _check_references(session, actor, body.id, body)
    _check_grants(actor, body.id, {}, {"roles": body.roles})
    row = Actor(**body.columns())
    store.people.save(session, row)
    audit.record(session, actor, "person.create", "person", row.id, None, _stored(row))
    await _commit(session, f"person {body.id!r} already exists")
    return await _one_out(session, row, actor)


async def _store(session: AsyncSession, actor: ActorRef, row: Actor, body: PersonFields) -> PersonOut:
    await _check_references(session, actor, row.id, body, manager_before=row.manager_id)
    before, after = _stored(row), body.columns()
    _check_grants(actor, row.id, before, after)
    _check_not_self_deactivation(actor, row.id, body.active)
    if row.active and not body.active:
        raise FieldInvalid(
            "active", "deactivate with DELETE /people/{id}: it also gives their open work to others", "use_delete"
        )
    for name, value in after.items():
        setattr(row, name, value)
    store.people.save(session, row)
    _record_update(session, actor, row.id, before, after)
    await _commit(session, f"person {row.id!r} changed at the same moment; retry")
    return await _one_out(session, row, actor)


def _stored(row: Actor) -> dict[str, Any]:
    """The person's fields as stored (plain JSON values)."""
    return audit.changes({}, {name: getattr(row, name) for name in PersonFields.model_fields})[1]


def _record_update(
    session: AsyncSession, actor: ActorRef, person_id: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """A change of roles is its own entry (``role.grant`` when it adds one, else ``role.revoke``);
    the other fields changed share a ``person.update``."""
    old, new = audit.changes(before, after)
    if "roles" in old:
        added = set(new["roles"]) - set(old["roles"])
        action = "role.grant" if added else "role.revoke"
        audit.record(
            session, actor, action, "person", person_id, {"roles": old.pop("roles")}, {"roles": new.pop("roles")}
        )
    if old:
        audit.record(session, actor, "person.update", "person", person_id, old, new)


async def replace_person(session: AsyncSession, actor: ActorRef, person_id: str, body: PersonFields) -> PersonOut:
    row = await _writable_row(session, actor, person_id)
    return await _store(session, actor, row, body)


async def patch_person(session: AsyncSession, actor: ActorRef, person_id: str, patch: PersonPatch) -> PersonOut:
    row = await _writable_row(session, actor, person_id)
    merged = {**_stored(row), **patch.model_dump(exclude_unset=True)}
    try:
        body = PersonFields.model_validate(merged)
    except ValidationError as exc:
        raise ProblemList(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from exc
    return await _store(session, actor, row, body)


async def deactivate_person(
    session: AsyncSession, actor: ActorRef, person_id: str, client: Client, task_queue: str
) -> Released | None:
    """Deactivate (again, if need be) and have every open ticket they hold take the work back:
    the ``PersonLeftWorkflow`` (one per person: a repeat joins it) signals each ticket."""
    row = await _writable_row(session, actor, person_id, lock=True)
    _check_not_self_deactivation(actor, person_id, False)
    now = datetime.now(UTC)
    keys = await store.people.working_key_ids(session, person_id, now)
    if row.active or keys:
        was_active, row.active = row.active, False
        store.people.save(session, row)
        if keys:  # every key stops working; a reactivated person needs a new one
            await store.people.revoke_keys(session, keys, now)
        audit.record(
            session,
            actor,
            "person.deactivate",
            "person",
            person_id,
            {"active": was_active},
            {"active": False, "revoked_keys": keys},
        )
        await _commit(session, f"person {person_id!r} changed at the same moment; retry")
    held = await store.tickets.held_by(session, person_id)
    if not held:
        return None
    wid = person_left.workflow_id(person_id)
    try:
        await client.start_workflow(
            PersonLeftWorkflow.run,
            PersonLeftInput(person_id=person_id, reason=f"deactivated by {actor.id}"),
            id=wid,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except RPCError as exc:
        raise ServiceUnavailable(
            f"{person_id} is deactivated, but releasing their {len(held)} tickets did not start "
            f"({exc.message}): repeat the DELETE"
        ) from exc
    return Released(person_id=person_id, tickets=held, workflow_id=wid)


# --- absences ---


async def self_or_writer_row(session: AsyncSession, actor: ActorRef, person_id: str, lock: bool = False) -> Actor:
    """Self, or a writer whose scope covers the person (``lock``: held until the commit)."""
    if actor.id == person_id:
        row = await store.people.get(session, person_id, lock)
        if row is None:
            raise NotFound(f"person {person_id} not found")
        return row
    return await _writable_row(session, actor, person_id, lock)


async def add_absence(
    session: AsyncSession, actor: ActorRef, person_id: str, absence: Absence
) -> tuple[PersonOut, bool]:
    """Add an out-of-office period; the same period again changes nothing (``False``)."""
    row = await self_or_writer_row(session, actor, person_id)
    current = [Absence.model_validate(p) for p in row.out_of_office]
    if absence in current:
        return await _one_out(session, row, actor), False
    clash = next((a for a in current if a.overlaps(absence)), None)
    if clash is not None:
        raise Conflict(
            f"{person_id} is already out of office {clash.start.isoformat()} – {clash.end.isoformat()}",
            start=clash.start.isoformat(),
            end=clash.end.isoformat(),
        )
    ordered = sorted([*current, absence], key=lambda a: (a.start, a.end))
    _set_absences(session, actor, row, [a.model_dump(mode="json") for a in ordered])
    await _commit(session, f"absences of {person_id!r} changed at the same moment; retry")
    return await _one_out(session, row, actor), True


async def remove_absence(session: AsyncSession, actor: ActorRef, person_id: str, start: Any) -> None:
    row = await self_or_writer_row(session, actor, person_id)
    current = [Absence.model_validate(p) for p in row.out_of_office]
    kept = [a for a in current if a.start != start]
    if len(kept) == len(current):
        raise NotFound(f"{person_id} has no absence starting at {start.isoformat()}")
    _set_absences(session, actor, row, [a.model_dump(mode="json") for a in kept])
    await _commit(session, f"absences of {person_id!r} changed at the same moment; retry")


def _set_absences(session: AsyncSession, actor: ActorRef, row: Actor, absences: list[dict[str, Any]]) -> None:
    audit.record(session, actor, "person.update", "person", row.id, {ABSENCES: row.out_of_office}, {ABSENCES: absences})
    row.out_of_office = absences
    store.people.save(session, row)
