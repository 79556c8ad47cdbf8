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

import base64
import binascii
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.errors import Conflict, FieldInvalid, Forbidden, NotFound, ProblemList, ServiceUnavailable
from api.services import audit
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
from models.db import json_text_contains
from models.tables import Actor, ApiKey, Region, bump_roster_revision, held_by, load_query, valid_keys
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
_SCAN_BATCH = 200  # rows read per round while a page fills up


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
    row = await session.get(Actor, person_id, with_for_update=lock)
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


async def loads(session: AsyncSession, person_ids: list[str]) -> dict[str, int]:
    """Open tickets (new, assigned, in progress) per assignee, from the read model."""
    if not person_ids:
        return {}
    return {assignee: n for assignee, n in (await session.exec(load_query(person_ids))).all()}


async def _with_keys(session: AsyncSession, person_ids: list[str]) -> set[str]:
    """Those of ``person_ids`` who hold a working API key."""
    if not person_ids:
        return set()
    q = select(ApiKey.actor_id).where(col(ApiKey.actor_id).in_(person_ids), valid_keys(datetime.now(UTC)))
    return set((await session.exec(q.distinct())).all())


async def _one_out(session: AsyncSession, row: Actor, viewer: ActorRef) -> PersonOut:
    load = (await loads(session, [row.id])).get(row.id, 0)
    return _out(row, load, viewer, row.id in await _with_keys(session, [row.id]))


# --- reads ---


@dataclass
class PeopleFilter:
    region: str | None = None  # works there (global people included)
    role: str | None = None
    team: str | None = None
    skill: str | None = None  # has the skill, any level
    active: bool | None = None  # None: both


def _encode_cursor(person_id: str) -> str:
    return base64.urlsafe_b64encode(person_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        value = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise FieldInvalid("cursor", "malformed cursor: pass back next_cursor unchanged", location="query") from exc
    if not value:
        raise FieldInvalid("cursor", "malformed cursor: pass back next_cursor unchanged", location="query")
    return value


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
    q = select(Actor)
    if f.team is not None:
        q = q.where(col(Actor.team) == f.team)
    if f.active is not None:
        q = q.where(col(Actor.active).is_(f.active))
    regions = [f.region] if f.region is not None else (None if ALL_REGIONS in actor.regions else actor.regions)
    if regions is not None:
        q = q.where(sa.or_(*(json_text_contains(Actor.regions, json.dumps(r)) for r in [*regions, ALL_REGIONS])))
    if f.role is not None:
        q = q.where(json_text_contains(Actor.roles, json.dumps(f.role)))
    if f.skill is not None:
        q = q.where(json_text_contains(Actor.skills, json.dumps(f.skill) + ":"))
    after = _decode_cursor(cursor) if cursor else None
    rows: list[Actor] = []
    while len(rows) <= limit:
        batch_q = q.where(col(Actor.id) > after) if after is not None else q
        batch = list((await session.exec(batch_q.order_by(col(Actor.id)).limit(_SCAN_BATCH))).all())
        rows.extend(r for r in batch if _matches(r, actor, f))
        if len(batch) < _SCAN_BATCH:
            break
        after = batch[-1].id
    more, rows = len(rows) > limit, rows[:limit]
    ids = [r.id for r in rows]
    load, keyed = await loads(session, ids), await _with_keys(session, ids)
    return PersonPage(
        items=[_out(r, load.get(r.id, 0), actor, r.id in keyed) for r in rows],
        next_cursor=_encode_cursor(rows[-1].id) if more else None,
    )


async def get_person(session: AsyncSession, actor: ActorRef, person_id: str) -> PersonOut:
    if person_id != actor.id:
        _require_roster_reader(actor)
    return await _one_out(session, await _visible_row(session, actor, person_id), actor)


async def list_teams(session: AsyncSession, actor: ActorRef) -> list[TeamOut]:
    """Primary teams and groups of the active people the caller can see."""
    _require_roster_reader(actor)
    people = [
        p for p in (await session.exec(select(Actor).where(col(Actor.active).is_(True)).order_by(col(Actor.id)))).all()
        if _visible(actor, list(p.regions))
    ]
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


async def _check_references(session: AsyncSession, actor: ActorRef, person_id: str, body: PersonFields) -> None:
    """Regions exist and are the caller's; the manager exists and heads no cycle."""
    for i, code in enumerate(body.regions):
        if code != ALL_REGIONS and await session.get(Region, code) is None:
            raise _invalid(["regions", i], f"unknown region {code!r}", "unknown_region")
    if not _covers(actor, body.regions):
        raise Forbidden(f"actor {actor.id!r} may not place people in regions {body.regions}")
    if body.manager_id is None:
        return
    if body.manager_id == person_id:
        raise _invalid(["manager_id"], "a person cannot be their own manager", "manager_cycle")
    manager = await session.get(Actor, body.manager_id)
    if manager is None:
        raise _invalid(["manager_id"], f"unknown person {body.manager_id!r}", "unknown_manager")
    chain, seen, current = [body.manager_id], {body.manager_id}, manager.manager_id
    while current is not None and current not in seen:
        chain.append(current)
        if current == person_id:
            raise _invalid(
                ["manager_id"], f"{body.manager_id!r} reports to {person_id!r} ({' → '.join(chain)})", "manager_cycle"
            )
        seen.add(current)
        row = await session.get(Actor, current)
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
        raise Forbidden(f"actor {actor.id!r} may not give or take the role(s) {', '.join(refused)} "
                        "(see the grant table in docs/people.md)", roles=refused)


def _check_not_self_deactivation(actor: ActorRef, person_id: str, active: bool) -> None:
    if person_id == actor.id and not active:
        raise Conflict("you cannot deactivate yourself")


async def _commit(session: AsyncSession, conflict: str) -> None:
    """Commit a change to people, with the roster revision that tells dispatch workers."""
    try:
        await session.exec(bump_roster_revision(session.bind.dialect.name))
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(conflict) from exc


async def create_person(session: AsyncSession, actor: ActorRef, body: PersonCreate) -> PersonOut:
    _require_writer(actor)
    if await session.get(Actor, body.id) is not None:
        raise Conflict(f"person {body.id!r} already exists")
    await _check_references(session, actor, body.id, body)
    _check_grants(actor, body.id, {}, {"roles": body.roles})
    row = Actor(**body.columns())
    session.add(row)
    audit.record(session, actor, "person.create", "person", row.id, None, _stored(row))
    await _commit(session, f"person {body.id!r} already exists")
    return await _one_out(session, row, actor)


async def _store(session: AsyncSession, actor: ActorRef, row: Actor, body: PersonFields) -> PersonOut:
    await _check_references(session, actor, row.id, body)
    before, after = _stored(row), body.columns()
    _check_grants(actor, row.id, before, after)
    _check_not_self_deactivation(actor, row.id, body.active)
    if row.active and not body.active:
        raise FieldInvalid(
            "active", "deactivate with DELETE /people/{id}: it also gives their open work to others", "use_delete"
        )
    for name, value in after.items():
        setattr(row, name, value)
    session.add(row)
    _record_update(session, actor, row.id, before, after)
    await _commit(session, f"person {row.id!r} changed at the same moment; retry")
    return await _one_out(session, row, actor)


def _stored(row: Actor) -> dict[str, Any]:
    """The person's fields as stored (plain JSON values)."""
    return audit.changes({}, {name: getattr(row, name) for name in PersonFields.model_fields})[1]


def _record_update(session: AsyncSession, actor: ActorRef, person_id: str, before: dict[str, Any],
                   after: dict[str, Any]) -> None:
    """A change of roles is its own entry (``role.grant`` when it adds one, else ``role.revoke``);
    the other fields changed share a ``person.update``."""
    old, new = audit.changes(before, after)
    if "roles" in old:
        added = set(new["roles"]) - set(old["roles"])
        action = "role.grant" if added else "role.revoke"
        audit.record(session, actor, action, "person", person_id, {"roles": old.pop("roles")},
                     {"roles": new.pop("roles")})
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
    keys = list((await session.exec(
        select(ApiKey.id).where(col(ApiKey.actor_id) == person_id, valid_keys(now)).order_by(col(ApiKey.id))
    )).all())
    if row.active or keys:
        was_active, row.active = row.active, False
        session.add(row)
        if keys:  # every key stops working; a reactivated person needs a new one
            table = ApiKey.__table__
            await session.exec(  # type: ignore[call-overload]
                sa.update(table).where(table.c.id.in_(keys), table.c.revoked_at.is_(None)).values(revoked_at=now)
            )
        audit.record(session, actor, "person.deactivate", "person", person_id, {"active": was_active},
                     {"active": False, "revoked_keys": keys})
        await _commit(session, f"person {person_id!r} changed at the same moment; retry")
    held = await held_by(session, person_id)
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
        row = await session.get(Actor, person_id, with_for_update=lock)
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
    audit.record(session, actor, "person.update", "person", row.id, {ABSENCES: row.out_of_office},
                 {ABSENCES: absences})
    row.out_of_office = absences
    session.add(row)
