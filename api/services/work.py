"""My work (``GET /me/work``): the tasks a person holds, is offered or may claim, and the
approvals waiting for their vote, soonest SLA deadline first, with the time left.

Read from the read model only (Temporal is never asked): ``store/work.py`` pre-filters the open
tickets of the caller's regions on their snapshots' text; each row is re-checked here against
the same rules the workflow applies (``domain/lifecycle.py``). The deadline of an item is the
earliest of its ticket's running SLA targets (response, resolution: the region's business
calendar, paused clocks left out) and, for an approval, its level's timeout.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

import store.work
from domain.access import visible_regions
from domain.calendar import add_business_time
from domain.lifecycle import HELD, allowed_for
from models.calendar import BusinessCalendar
from models.tables import Region
from models.ticket import ActorRef, NodeState, NodeStatus, Priority, SlaClock, TicketState
from models.work_http import Kind, WorkItem, WorkPage
from store.regions import calendar_of

PRIORITY_RANK = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}


def _kind(node: NodeState, actor: ActorRef) -> Kind | None:
    """What the node asks of ``actor``, if anything (the workflow's rules: domain/lifecycle.py)."""
    if node.type == "task":
        if node.status in HELD:
            return "assigned" if node.assignee == actor.id else None
        if node.status != NodeStatus.OPEN:
            return None
        if node.offers:  # a grab pool: only the offerees, while it lasts
            return "offered" if actor.id in node.offers else None
        kind, _, value = (node.candidates or "").partition(":")
        mine = (
            (kind == "user" and value == actor.id)
            or (kind == "role" and value in actor.roles)
            or (kind == "group" and value in actor.groups)
        )
        return "claimable" if mine else None
    if node.type == "approval" and node.status == NodeStatus.OPEN and actor.id in node.approvers:
        voted = any(v.actor_id == actor.id and v.level == node.level for v in node.votes)
        return None if voted else "approval"
    return None


def _clock_due(clock: SlaClock, cal: BusinessCalendar) -> datetime | None:
    """When a running clock reaches its target (None: done or paused)."""
    if clock.done_at is not None or clock.running_since is None:
        return None
    left = max(timedelta(0), clock.target - clock.used)
    return add_business_time(cal, clock.running_since, left).astimezone(UTC)


def _deadline(state: TicketState, node: NodeState, cal: BusinessCalendar) -> tuple[datetime | None, str | None]:
    options: list[tuple[datetime, str]] = []
    for name, clock in state.sla.clocks.items():
        if (due := _clock_due(clock, cal)) is not None:
            options.append((due, name))
    if node.type == "approval" and node.due is not None:
        options.append((node.due.astimezone(UTC), "approval"))
    return min(options) if options else (None, None)


def _site(fields: dict[str, Any]) -> dict[str, Any] | None:
    for value in fields.values():
        if isinstance(value, dict) and isinstance(value.get("lat"), int | float) and "lon" in value:
            return value
    return None


def _item(
    state: TicketState, node: NodeState, kind: Kind, actor: ActorRef, cal: BusinessCalendar, now: datetime
) -> WorkItem:
    due_at, due = _deadline(state, node, cal)
    site = _site(state.fields)
    delegated_by = node.delegations.get(actor.id)
    return WorkItem(
        ticket_id=state.ticket_id,
        title=state.title,
        ticket_type=state.ticket_type,
        region=state.region,
        priority=state.priority,
        status=state.status,
        node=node.id,
        node_name=node.name or node.id,
        node_type="approval" if node.type == "approval" else "task",
        node_status=node.status,
        kind=kind,
        level=(node.levels[node.level] if node.type == "approval" and node.level < len(node.levels) else None),
        delegated_by=delegated_by if delegated_by != actor.id else None,
        awaiting_info=node.awaiting_info,
        address=str(site["address"]) if site and site.get("address") else None,
        lat=float(site["lat"]) if site else None,
        lon=float(site["lon"]) if site else None,
        on_site=node.on_site,
        due_at=due_at,
        due=due,  # type: ignore[arg-type]
        seconds_left=int((due_at - now).total_seconds()) if due_at is not None else None,
        sla_paused=any(c.done_at is None and c.running_since is None for c in state.sla.clocks.values()),
        sla_breached=state.sla.breached,
        created_at=state.created_at,
        allowed_actions=allowed_for(state, actor),
    )


def _order(item: WorkItem) -> tuple[Any, ...]:
    far = datetime.max.replace(tzinfo=UTC)
    return (item.due_at or far, PRIORITY_RANK.get(item.priority, 9), item.created_at, item.ticket_id, item.node)


async def my_work(session: AsyncSession, actor: ActorRef, limit: int, now: datetime | None = None) -> WorkPage:
    """The caller's work in their regions, soonest deadline first (none last), then by priority."""
    now = now or datetime.now(UTC)
    rows = await store.work.candidates(session, actor.id, actor.roles, actor.groups, visible_regions(actor))
    truncated = len(rows) > store.work.MAX_SCAN
    found: list[tuple[TicketState, NodeState, Kind]] = []
    for row in rows[: store.work.MAX_SCAN]:
        snapshot = row.snapshot or {}
        nodes = snapshot.get("nodes") or {}
        hits = []
        for node_id in snapshot.get("active") or []:
            if node_id not in nodes:
                continue
            node = NodeState.model_validate(nodes[node_id])
            if (kind := _kind(node, actor)) is not None:
                hits.append((node, kind))
        if hits:
            state = TicketState.model_validate(snapshot)
            found.extend((state, node, kind) for node, kind in hits)
    known = await store.work.regions(session, sorted({s.region for s, _, _ in found}))
    calendars: dict[str, BusinessCalendar] = {}
    for code in {s.region for s, _, _ in found}:
        region = known.get(code) or Region(code=code, name=code)
        calendars[code] = calendar_of(region)
    items = sorted((_item(s, n, k, actor, calendars[s.region], now) for s, n, k in found), key=_order)
    return WorkPage(items=items[:limit], now=now, truncated=truncated or len(items) > limit)
