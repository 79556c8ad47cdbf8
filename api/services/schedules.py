"""Schedules: maintenance plans for assets under contract, and the follow-ups templates declare,
each a Temporal Schedule (activities/schedules.py builds them) with a row in
``maintenance_schedule`` for lists, scope and the audit trail (docs/schedules.md).

Scope: a schedule is seen by staff of its region; outside it is ``NotFound`` and Temporal is
never asked. An asset or contract a body names that the caller may not see is reported like
one that does not exist (a 422 naming the field), as ticket intake does. Creating, pausing,
resuming and deleting take ``MANAGERS``; every change is in the audit log.

A plan needs a service contract valid today that covers the asset (naming it, or all of its
customer's assets); it fires from ``start_at`` every ``every`` until the day the contract
ends. Its tickets must be able to open: the ticket type exists, is raised by the system, and
the form values (with those the template fills from the asset) pass at creation, not at the
first firing.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleDescription
from temporalio.service import RPCError, RPCStatusCode

import store.assets
import store.customers
import store.regions
import store.schedules
import store.templates
from activities.schedules import create_schedule
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound, ProblemList, ServiceUnavailable
from api.services import audit
from api.services.paging import cursor_key
from domain.access import can_access_region, visible_regions
from domain.forms import validate_values
from models.customer_tables import Asset, ServiceContract
from models.schedule_tables import MaintenanceSchedule
from models.schedules import (
    ScheduleCreate,
    ScheduleDetail,
    ScheduleKind,
    ScheduleOut,
    SchedulePage,
    ScheduleRun,
    ScheduleState,
)
from models.settings import Settings
from models.ticket import ActorRef
from store.assets import fill_from_asset

MANAGERS = frozenset({"supervisor", "manager", "admin"})
SYSTEM_CHANNEL = "system"  # the channel of the tickets schedules open (models/intake.py)
EARLIEST_START = timedelta(days=366)  # start_at at most this far back (it sets the phase)
LATEST_START = timedelta(days=3660)
RECENT_RUNS = 10
NEXT_RUNS = 10


def _require(actor: ActorRef, what: str) -> None:
    if MANAGERS.isdisjoint(actor.roles):
        raise Forbidden(f"actor {actor.id!r} may not {what} (roles: {', '.join(sorted(MANAGERS))})")


def out(row: MaintenanceSchedule) -> ScheduleOut:
    return ScheduleOut(
        **row.model_dump(exclude={"every_s", "ticket"}),
        every=timedelta(seconds=row.every_s) if row.every_s is not None else None,
    )


def _day_in(timezone: str, at: datetime) -> date:
    try:
        return at.astimezone(ZoneInfo(timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return at.astimezone(UTC).date()


def _midnight_after(day: date, timezone: str) -> datetime:
    """The moment ``day`` ends where ``timezone`` is, in UTC."""
    try:
        zone: Any = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)


# --- create ---


@dataclass(frozen=True)
class _Target:
    """What a plan is for: the asset (if one), the contract covering it, the customer, the region."""

    asset: Asset | None
    contract: ServiceContract
    customer_id: str
    region: str
    timezone: str


async def create(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    actor: ActorRef,
    body: ScheduleCreate,
    idempotency_key: str | None,
) -> tuple[ScheduleOut, bool]:
    """The new plan and True; or, repeated with the same Idempotency-Key, the plan it made and False."""
    _require(actor, "create schedules")
    schedule_id = _plan_id(actor, idempotency_key)
    if idempotency_key and (existing := await store.schedules.get(session, schedule_id)) is not None:
        if existing.state != ScheduleState.DELETED:  # an attempt that stopped before Temporal: finish it
            await _create_in_temporal(session, client, settings, existing, forget_on_failure=False)
        return out(existing), False
    target = await _target(session, actor, body)
    await _check_ticket(session, actor, body, target.asset)
    now = datetime.now(UTC).replace(microsecond=0)
    start = (body.start_at.astimezone(UTC) if body.start_at else now + body.every).replace(microsecond=0)
    end = _midnight_after(target.contract.valid_to, target.timezone)
    if not now - EARLIEST_START <= start <= now + LATEST_START:
        raise FieldInvalid("start_at", "must be within a year back and ten years ahead", "out_of_range")
    if start >= end:
        raise FieldInvalid(
            "start_at", f"the contract ends on {target.contract.valid_to}: start before", "after_contract"
        )
    row = MaintenanceSchedule(
        id=schedule_id,
        kind=ScheduleKind.MAINTENANCE.value,
        region=target.region,
        ticket_type=body.ticket_type,
        title=body.title,
        asset_id=target.asset.id if target.asset else None,
        customer_id=target.customer_id,
        contract=target.contract.number,
        every_s=int(body.every.total_seconds()),
        start_at=start,
        end_at=end,
        ticket={
            "description": body.description,
            "priority": body.priority.value if body.priority else None,
            "fields": body.fields,
        },
        state=ScheduleState.ACTIVE.value,
        created_by=actor.id,
        created_at=now,
        updated_at=now,
    )
    store.schedules.add(session, row)
    try:
        await session.commit()
    except IntegrityError as exc:  # the same Idempotency-Key at the same moment
        await session.rollback()
        raise Conflict("a plan with this Idempotency-Key is being created; repeat the request") from exc
    await _create_in_temporal(session, client, settings, row, forget_on_failure=True)
    audit.record(session, actor, "schedule.create", "schedule", row.id, None, out(row).model_dump(mode="json"))
    await session.commit()
    return out(row), True


def _plan_id(actor: ActorRef, idempotency_key: str | None) -> str:
    if not idempotency_key:
        return f"mnt-{secrets.token_hex(8)}"
    return "mnt-" + hashlib.sha256(f"{actor.id}\0{idempotency_key}".encode()).hexdigest()[:16]


async def _create_in_temporal(
    session: AsyncSession, client: Client, settings: Settings, row: MaintenanceSchedule, forget_on_failure: bool
) -> None:
    try:
        await create_schedule(client, row, settings.task_queue)
    except RPCError as exc:
        if forget_on_failure:
            await store.schedules.forget(session, row.id)
            await session.commit()
        raise ServiceUnavailable(f"Temporal did not create the schedule: {exc.message}") from exc


async def _target(session: AsyncSession, actor: ActorRef, body: ScheduleCreate) -> _Target:
    """The asset and the contract the body names, each visible to the caller, the contract valid
    today and covering the asset."""
    asset = None
    if body.asset_id is not None:
        asset = await store.assets.get(session, body.asset_id)
        if asset is None or not can_access_region(actor, asset.region):
            raise FieldInvalid("asset_id", "no such asset", "unknown_asset")
    contract, customer = None, None
    if body.contract is not None:
        contract = await store.assets.contract_by_number(session, body.contract)
        customer = await store.customers.get(session, contract.customer_id) if contract is not None else None
        if contract is None or customer is None or not can_access_region(actor, customer.region):
            raise FieldInvalid("contract", "no such contract", "unknown_contract")
        if asset is None and contract.asset_id is not None:
            asset = await store.assets.get(session, contract.asset_id)
    if customer is None:
        assert asset is not None  # the body names one of the two
        customer = await store.customers.get(session, asset.customer_id)
        if customer is None:
            raise FieldInvalid("asset_id", "the asset's customer is gone", "unknown_customer")
    family = await store.customers.family(session, customer.id)
    region = asset.region if asset is not None else customer.region
    if not can_access_region(actor, region):  # a contract's asset in another region
        raise FieldInvalid("contract", "no such contract", "unknown_contract")
    zone = await store.regions.get(session, region)
    timezone = zone.timezone if zone is not None else "UTC"
    today = _day_in(timezone, datetime.now(UTC))
    if contract is None:
        assert asset is not None
        contract = (await store.assets.coverage(session, family, asset, today)).contract
        if contract is None:
            raise FieldInvalid("asset_id", "no service contract covers this asset today", "not_under_contract")
    else:
        if asset is not None and (asset.customer_id not in family or contract.asset_id not in (None, asset.id)):
            raise FieldInvalid("contract", "this contract does not cover the asset", "contract_not_covering")
        if contract.valid_to < today:
            raise FieldInvalid("contract", f"the contract ended on {contract.valid_to}", "contract_expired")
    return _Target(asset=asset, contract=contract, customer_id=customer.id, region=region, timezone=timezone)


async def _check_ticket(session: AsyncSession, actor: ActorRef, body: ScheduleCreate, asset: Asset | None) -> None:
    """The plan's tickets can open: the type exists, the system may raise it, the values pass."""
    row = await store.templates.latest(session, body.ticket_type)
    if row is None:
        raise FieldInvalid("ticket_type", f"unknown ticket type {body.ticket_type!r}", "unknown_ticket_type")
    spec = store.templates.to_version(row).spec
    if spec.channels and SYSTEM_CHANNEL not in spec.channels:
        raise FieldInvalid(
            "ticket_type",
            f"{spec.key} tickets are raised through {', '.join(spec.channels)} only",
            "channel_not_allowed",
        )
    _, problems = validate_values(spec, fill_from_asset(spec, body.fields, asset), roles=actor.roles, intake=True)
    if problems:
        raise ProblemList([{"loc": ["body", "fields", f], "msg": m, "type": t} for f, m, t in problems])


# --- reads ---


async def _visible(session: AsyncSession, actor: ActorRef, schedule_id: str) -> MaintenanceSchedule:
    row = await store.schedules.get(session, schedule_id)
    if row is None or not can_access_region(actor, row.region):
        raise NotFound(f"schedule {schedule_id} not found")
    return row


@dataclass
class ScheduleFilter:
    kind: ScheduleKind | None = None
    state: ScheduleState | None = None
    asset_id: str | None = None
    source_ticket: str | None = None


async def list_schedules(
    session: AsyncSession, actor: ActorRef, f: ScheduleFilter, limit: int, cursor: str | None
) -> SchedulePage:
    """Newest first, the caller's regions; deleted ones only when asked for (``state=deleted``)."""
    rows, next_cursor = await store.schedules.page(
        session,
        regions=visible_regions(actor),
        kind=f.kind.value if f.kind else None,
        state=f.state.value if f.state else None,
        asset_id=f.asset_id,
        source_ticket=f.source_ticket,
        limit=limit,
        after=cursor_key(cursor, datetime, str),
    )
    return SchedulePage(items=[out(r) for r in rows], next_cursor=next_cursor)


async def get(session: AsyncSession, client: Client, actor: ActorRef, schedule_id: str) -> ScheduleDetail:
    row = await _visible(session, actor, schedule_id)
    return await _detail(client, row)


async def _detail(client: Client, row: MaintenanceSchedule) -> ScheduleDetail:
    """The row with what Temporal says now: paused, note, next and recent runs."""
    base = out(row).model_dump()
    if row.state == ScheduleState.DELETED:
        return ScheduleDetail(**base, temporal=False)
    try:
        desc = await client.get_schedule_handle(row.id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return ScheduleDetail(**base, temporal=False)
        raise ServiceUnavailable(f"Temporal did not describe the schedule: {exc.message}") from exc
    return ScheduleDetail(**base, temporal=True, **_described(desc))


def _described(desc: ScheduleDescription) -> dict[str, Any]:
    runs = []
    for result in desc.info.recent_actions[-RECENT_RUNS:]:
        action = result.action
        if isinstance(action, ScheduleActionExecutionStartWorkflow):
            runs.append(
                ScheduleRun(
                    scheduled_at=result.scheduled_at, started_at=result.started_at, workflow_id=action.workflow_id
                )
            )
    return {
        "paused": desc.schedule.state.paused,
        "note": desc.schedule.state.note,
        "next_runs": list(desc.info.next_action_times[:NEXT_RUNS]),
        "recent_runs": runs,
        "actions_taken": desc.info.num_actions,
    }


# --- pause, resume, delete ---


async def pause(session: AsyncSession, client: Client, actor: ActorRef, schedule_id: str) -> ScheduleDetail:
    return await _set_paused(session, client, actor, schedule_id, paused=True)


async def resume(session: AsyncSession, client: Client, actor: ActorRef, schedule_id: str) -> ScheduleDetail:
    return await _set_paused(session, client, actor, schedule_id, paused=False)


async def _set_paused(
    session: AsyncSession, client: Client, actor: ActorRef, schedule_id: str, paused: bool
) -> ScheduleDetail:
    verb = "pause" if paused else "resume"
    _require(actor, f"{verb} schedules")
    row = await _visible(session, actor, schedule_id)
    if row.state == ScheduleState.DELETED:
        raise Conflict(f"schedule {schedule_id} is deleted", state=row.state)
    handle = client.get_schedule_handle(row.id)
    note = f"{'paused' if paused else 'resumed'} by {actor.id}"
    try:
        await (handle.pause(note=note) if paused else handle.unpause(note=note))
    except RPCError as exc:
        raise _temporal_error(exc, schedule_id, verb) from exc
    before = row.state
    after = ScheduleState.PAUSED if paused else ScheduleState.ACTIVE
    if before != after:
        now = datetime.now(UTC)
        await store.schedules.set_state(session, row.id, after.value, now)
        audit.record(session, actor, f"schedule.{verb}", "schedule", row.id, {"state": before}, {"state": after.value})
        await session.commit()
        await session.refresh(row)
    return await _detail(client, row)


async def delete(session: AsyncSession, client: Client, actor: ActorRef, schedule_id: str) -> None:
    """Delete the Temporal schedule (its running firings finish); the row stays, ``deleted``."""
    _require(actor, "delete schedules")
    row = await _visible(session, actor, schedule_id)
    if row.state == ScheduleState.DELETED:
        return
    try:
        await client.get_schedule_handle(row.id).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # gone already: deleting it is done
            raise _temporal_error(exc, schedule_id, "delete") from exc
    before = row.state
    await store.schedules.set_state(session, row.id, ScheduleState.DELETED.value, datetime.now(UTC))
    audit.record(session, actor, "schedule.delete", "schedule", row.id, {"state": before}, {"state": "deleted"})
    await session.commit()


def _temporal_error(exc: RPCError, schedule_id: str, verb: str) -> Exception:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return Conflict(f"schedule {schedule_id} no longer exists in Temporal: delete it", code="schedule_gone")
    return ServiceUnavailable(f"Temporal did not {verb} the schedule: {exc.message}")
