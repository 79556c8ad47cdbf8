"""Temporal Schedules that open tickets, and ``schedules.follow_up``.

One shape for both kinds (a ``maintenance_schedule`` row, the same id in Temporal): the
schedule's action starts the ``ScheduledTicket`` workflow (workflows/maintenance.py) with what
the ticket carries; the row's kind decides the spec:

- **maintenance** (``POST /schedules``): an interval of ``every`` aligned on ``start_at``
  (Temporal aligns intervals on the Unix epoch; the offset moves them onto the start), until
  ``end_at`` — the day the service contract ends. Each firing's ticket is keyed by its
  scheduled time.
- **follow_up** (a template's ``follow_ups``): one calendar moment, ``due_at``, with one action
  allowed (``remaining_actions=1``); its ticket has the fixed key
  ``follow-up:<ticket>:<name>``. A moment already past is fired at once instead.

Overlapping firings all run (``ALLOW_ALL``): each opens its own ticket, idempotently. The
schedules (not their runs, which are no tickets) carry the ticket search attributes (region,
type), a memo and a note, and each run a summary, so ops find and read them in the Temporal UI.

``schedules.follow_up`` is idempotent by (ticket, follow-up name): the schedule id derives from
them, the row is inserted once, and "already exists" in Temporal means done.
"""

from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

import store.assets
import store.schedules
import store.templates
import store.tickets
from activities.intake import checked_fields
from activities.resources import database
from models import search_attributes as attrs
from models.schedule_tables import MaintenanceSchedule
from models.schedules import FollowUpInput, FollowUpScheduled, ScheduledTicket, ScheduleKind
from models.ticket import SYSTEM
from store.assets import fill_from_asset

WORKFLOW = "ScheduledTicket"
RUN_TIMEOUT = timedelta(days=1)  # one firing's workflow: opening the ticket, retried meanwhile
FOLLOW_UP_CATCHUP = timedelta(days=7)  # a follow-up missed while Temporal was down still fires within this
MAX_CATCHUP = timedelta(days=30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

UNKNOWN_TICKET = "FollowUp:UnknownTicket"
UNKNOWN_TICKET_TYPE = "FollowUp:UnknownTicketType"


def follow_up_id(ticket_id: str, name: str) -> str:
    return f"follow-up-{ticket_id}-{name}"


def ticket_of(row: MaintenanceSchedule) -> ScheduledTicket:
    """What each firing of the row's schedule opens."""
    extra = row.ticket
    return ScheduledTicket(
        schedule_id=row.id,
        ticket_type=row.ticket_type,
        region=row.region,
        title=row.title,
        description=extra.get("description", ""),
        priority=extra.get("priority"),
        fields=extra.get("fields", {}),
        customer_id=row.customer_id,
        asset_id=row.asset_id,
        created_by=row.created_by,
        external_ref=extra.get("external_ref"),
        key=extra.get("key"),
    )


def _spec(row: MaintenanceSchedule) -> ScheduleSpec:
    if row.kind == ScheduleKind.FOLLOW_UP:
        assert row.due_at is not None
        due = row.due_at.astimezone(UTC)
        at = ScheduleCalendarSpec(
            second=[ScheduleRange(due.second)],
            minute=[ScheduleRange(due.minute)],
            hour=[ScheduleRange(due.hour)],
            day_of_month=[ScheduleRange(due.day)],
            month=[ScheduleRange(due.month)],
            year=[ScheduleRange(due.year)],
            comment=f"once, {due:%Y-%m-%d %H:%M} UTC",
        )
        return ScheduleSpec(calendars=[at], time_zone_name="UTC")
    assert row.every_s is not None and row.start_at is not None
    every = timedelta(seconds=row.every_s)
    return ScheduleSpec(
        intervals=[ScheduleIntervalSpec(every=every, offset=(row.start_at - EPOCH) % every)],
        start_at=row.start_at,
        end_at=row.end_at,
    )


def describe_row(row: MaintenanceSchedule) -> str:
    """One line for the Temporal UI (the schedule's note, the runs' summary)."""
    if row.kind == ScheduleKind.FOLLOW_UP:
        return f"Follow-up of ticket {row.source_ticket}: {row.title} ({row.ticket_type}, {row.region})"
    days = (row.every_s or 0) / 86_400
    on = f"asset {row.asset_id}" if row.asset_id else "every asset"
    contract = f" under contract {row.contract}" if row.contract else ""
    return f"Maintenance of {on}{contract} every {days:g} days: {row.title} ({row.ticket_type}, {row.region})"


def temporal_schedule(row: MaintenanceSchedule, task_queue: str) -> Schedule:
    """The Temporal Schedule of a row."""
    every = timedelta(seconds=row.every_s) if row.every_s else None
    catchup = min(every, MAX_CATCHUP) if every is not None else FOLLOW_UP_CATCHUP
    action = ScheduleActionStartWorkflow(
        WORKFLOW,
        ticket_of(row),
        id=row.id,  # Temporal appends each firing's time
        task_queue=task_queue,
        execution_timeout=RUN_TIMEOUT,
        static_summary=describe_row(row),
        static_details=f"Schedule **{row.id}**, created by {row.created_by}",
    )
    follow_up = row.kind == ScheduleKind.FOLLOW_UP
    return Schedule(
        action=action,
        spec=_spec(row),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=catchup),
        state=ScheduleState(note=describe_row(row), limited_actions=follow_up, remaining_actions=1 if follow_up else 0),
    )


def _attributes(row: MaintenanceSchedule) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [SearchAttributePair(attrs.TICKET_REGION, row.region), SearchAttributePair(attrs.TICKET_TYPE, row.ticket_type)]
    )


async def create_schedule(client: Client, row: MaintenanceSchedule, task_queue: str, fire_now: bool = False) -> bool:
    """Create the row's schedule in Temporal; False if one with its id exists already."""
    memo = {
        "kind": row.kind,
        "region": row.region,
        "asset_id": row.asset_id,
        "contract": row.contract,
        "source_ticket": row.source_ticket,
        "created_by": row.created_by,
    }
    try:
        await client.create_schedule(
            row.id,
            temporal_schedule(row, task_queue),
            trigger_immediately=fire_now,
            memo={k: v for k, v in memo.items() if v is not None},
            search_attributes=_attributes(row),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True


@activity.defn(name="schedules.follow_up")
async def follow_up(inp: FollowUpInput) -> FollowUpScheduled:
    """Schedule the follow-up ``inp.follow_up`` of ticket ``inp.ticket_id``, due ``delay`` after
    ``inp.at``; once per (ticket, follow-up name). A follow-up deleted through the API stays deleted."""
    spec = inp.follow_up
    schedule_id = follow_up_id(inp.ticket_id, spec.name)
    due = (inp.at + spec.delay).astimezone(UTC).replace(microsecond=0)
    async with database().session() as session:
        ticket = await store.tickets.get(session, inp.ticket_id)
        if ticket is None:
            raise ApplicationError(f"no ticket {inp.ticket_id}", type=UNKNOWN_TICKET, non_retryable=True)
        template = await store.templates.latest(session, spec.ticket_type)
        if template is None:
            raise ApplicationError(
                f"follow-up {spec.name!r}: unknown ticket type {spec.ticket_type!r}",
                type=UNKNOWN_TICKET_TYPE,
                non_retryable=True,
            )
        asset = await store.assets.get(session, ticket.asset_id) if ticket.asset_id else None
        # Its ticket could never open (required fields nobody fills): refused now, not at the firing.
        ticket_spec = store.templates.to_version(template).spec
        checked_fields(ticket_spec, fill_from_asset(ticket_spec, {}, asset), SYSTEM)
        now = datetime.now(UTC)
        row = MaintenanceSchedule(
            id=schedule_id,
            kind=ScheduleKind.FOLLOW_UP.value,
            region=ticket.region,
            ticket_type=spec.ticket_type,
            title=spec.title,
            asset_id=ticket.asset_id,
            customer_id=ticket.customer_id,
            due_at=due,
            source_ticket=ticket.id,
            ticket={
                "description": spec.description or f"Follow-up {spec.name!r} of ticket {ticket.id}: {ticket.title}",
                "priority": spec.priority.value if spec.priority else None,
                "external_ref": ticket.id,
                "key": f"follow-up:{ticket.id}:{spec.name}",
            },
            state="active",
            created_by=SYSTEM.id,
            created_at=now,
            updated_at=now,
        )
        await store.schedules.add_once(session, row)
        await session.commit()
        row = await store.schedules.get(session, schedule_id) or row  # an earlier attempt's, if any
    if row.state == "deleted":
        return FollowUpScheduled(schedule_id=schedule_id, due_at=due, new=False)
    created = await create_schedule(activity.client(), row, activity.info().task_queue, fire_now=due <= now)
    activity.logger.info("follow-up %s due %s (%s)", schedule_id, due, "scheduled" if created else "already there")
    return FollowUpScheduled(schedule_id=schedule_id, due_at=due, new=created)
