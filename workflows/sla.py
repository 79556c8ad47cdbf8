"""SLA clocks inside TicketWorkflow: first response and resolution, in business time.

Deadlines come from the region's business calendar (``domain/calendar.py``, pure) and are
awaited as durable timers. Milestones, as shares of the target (the template's
``sla_policy``; by default): reminders at 50 % and 80 %, the breach at 100 % (escalated to a
supervisor), then a manager at 150 % and a director at 200 %. Each notifies through
``notify.send``; at the breach, tasks nobody has started are dispatched again to someone else
(``workflows/assignment.py``). The clock pauses while the ticket waits on the customer (an
active ``wait`` node for an event, or a task's ``request_info`` until the ``customer_reply``
signal) and resumes with the time left.
Deterministic workflow code: no I/O, time from ``workflow.now()``.
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.calendar import add_business_time, business_time_between
    from models import search_attributes as attrs
    from models.calendar import BusinessCalendar
    from models.directory import PeopleQuery, PeopleResult
    from models.template import TaskNode
    from models.ticket import SYSTEM, NodeStatus, SlaClock, TicketStatus
    from workflows import assignment
    from workflows.nodes.notify import send
    from workflows.protocol import Run

LEVELS = ["supervisor", "manager", "director"]  # who the breach and the escalations reach


def milestones(wf: Run) -> list[tuple[float, str, str | None]]:
    """(share of the target, what, who is told), from the template's ``sla_policy``."""
    policy = wf.spec.sla_policy
    out: list[tuple[float, str, str | None]] = [(r, "reminder", None) for r in policy.reminders]
    out.append((1.0, "breach", LEVELS[0]))
    out += [(share, "escalation", who) for share, who in zip(policy.escalations, LEVELS[1:], strict=False)]
    return out


RESPONDED = frozenset({"claim", "assign", "start", "complete", "resolve", "approve", "reject", "request_info"})
RESOLVED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED, TicketStatus.CANCELLED})


def targets(wf: Run) -> dict[str, timedelta]:
    """Per-priority targets of the template, else the first task's own SLA; a service
    contract's tier (resolved at intake) replaces each target it sets."""
    sla = wf.spec.sla.get(wf.state.priority)
    if sla is None:
        first = wf.spec.node(wf.spec.start)
        sla = getattr(first, "sla", None)
    found = {} if sla is None else {"response": sla.response, "resolution": sla.resolution}
    contract = wf.state.contract_sla
    if contract is not None:
        found.update({k: v for k, v in (("response", contract.response), ("resolution", contract.resolution)) if v})
    return {k: v for k, v in found.items() if v}


def start_clocks(wf: Run) -> None:
    """The ticket's clocks run from intake (``created_at``, when the API or an intake activity
    took the ticket), not from the workflow's first task: a ticket taken just before an outage
    of the Temporal server or of every worker keeps its deadlines. Histories recorded before
    the ``release-2026-12-05`` patch started them at the first task."""
    now = workflow.now()
    since = min(wf.state.created_at, now) if wf.sla_from_intake else now
    for kind, target in targets(wf).items():
        wf.state.sla.clocks[kind] = SlaClock(target=target, running_since=since)


def retarget(wf: Run) -> dict[str, str]:
    """The priority changed: running clocks take the new priority's targets (time already used
    stays used; the next milestone is computed afresh). Returns the new targets."""
    changed = {}
    for kind, target in targets(wf).items():
        clock = wf.state.sla.clocks.get(kind)
        if clock is not None and clock.done_at is None and clock.target != target:
            clock.target = target
            changed[kind] = str(target)
    return changed


def start_node_clocks(wf: Run, node: TaskNode) -> list[str]:
    """A task with its own ``sla`` gets clocks of its own ("<node>.response", "<node>.resolution"),
    from when it opens — unless it is the first task whose SLA already is the ticket's."""
    if node.sla is None or (wf.spec.sla.get(wf.state.priority) is None and node.id == wf.spec.start):
        return []
    keys = []
    for kind, target in (("response", node.sla.response), ("resolution", node.sla.resolution)):
        if target:
            keys.append(f"{node.id}.{kind}")
            wf.state.sla.clocks[keys[-1]] = SlaClock(target=target, running_since=workflow.now())
    return keys


def on_change(wf: Run, action: str, actor_id: str, node: str | None = None) -> None:
    """Called for every state change: stop the clocks whose goal was reached. A ticket clock
    ("response") is answered by anyone's first action; a node's ("visit.response") by an
    action on that node; a node's resolution ends when the node does."""
    now = workflow.now()
    responded = actor_id != SYSTEM.id and action in RESPONDED
    for key, clock in wf.state.sla.clocks.items():
        if clock.done_at is not None:
            continue
        owner, _, kind = key.rpartition(".")
        state = wf.state.nodes.get(owner) if owner else None
        if (
            wf.state.status in RESOLVED
            or (kind == "response" and responded and (not owner or owner == node))
            or (state is not None and state.status in (NodeStatus.DONE, NodeStatus.CANCELLED))
        ):
            clock.done_at = now


def paused(wf: Run, key: str) -> bool:
    """Waiting on the customer: for the ticket's clocks, a wait node for an event or a task that
    asked for information; for a node's own clocks, that node asking."""
    owner = _owner(key)
    if owner is not None:
        node = wf.state.nodes.get(owner)
        return node is not None and node.awaiting_info is not None
    return any(
        (wf.state.nodes[n].type == "wait" and wf.spec.node(n).signal) or wf.state.nodes[n].awaiting_info is not None
        for n in wf.state.active
    )


def holding(wf: Run, key: str, clock: SlaClock) -> bool:
    """Paused now: waiting on the customer, and the template's ``max_pause`` not used up."""
    return not clock.pause_spent and paused(wf, key)


async def _hold(wf: Run, kind: str, clock: SlaClock, cal: BusinessCalendar) -> None:
    """Stay paused until the customer answers (or the clock is done) — at most what is left of
    the template's ``max_pause``; then the clock runs again and the holders are told."""
    released = lambda: not paused(wf, kind) or clock.done_at is not None  # noqa: E731
    limit = wf.spec.sla_policy.max_pause
    if limit is None:
        await workflow.wait_condition(released)
        return
    if clock.paused_since is None:  # paused before pauses were measured
        clock.paused_since = workflow.now()
    ends = add_business_time(cal, clock.paused_since, max(timedelta(0), limit - clock.paused_for))
    delay = (ends - workflow.now()).total_seconds()
    if delay > 0:
        try:
            await workflow.wait_condition(released, timeout=delay, timeout_summary=f"SLA {kind}: pause limit {limit}")
            return
        except TimeoutError:
            pass
    wf.firing += 1  # recorded as one step: no continue-as-new in between
    try:
        clock.pause_spent = True
        await wf.record("sla_pause_limit", SYSTEM, {"sla": kind, "max_pause": str(limit)})
        holders = [h for h in _holders(wf, _owner(kind)) if h != wf.state.created_by] or ["role:supervisor"]
        wf.tell("pause_limit", "normal", holders, f"{kind} clock runs again: paused for {limit}")
    finally:
        wf.firing -= 1


async def run_clock(wf: Run, kind: str, cal: BusinessCalendar) -> None:
    clock = wf.state.sla.clocks[kind]
    steps = milestones(wf)
    while clock.milestone < len(steps) and clock.done_at is None:
        now = workflow.now()
        if holding(wf, kind, clock):
            if clock.running_since is not None:
                clock.used += business_time_between(cal, clock.running_since, now)
                clock.running_since, clock.due, clock.paused_since = None, None, now
            await _hold(wf, kind, clock, cal)
            continue
        if clock.running_since is None:
            clock.running_since = now
            if clock.paused_since is not None:
                clock.paused_for += business_time_between(cal, clock.paused_since, now)
                clock.paused_since = None
        share, what, who = steps[clock.milestone]
        left = max(timedelta(0), clock.target * share - clock.used)
        clock.due = add_business_time(cal, clock.running_since, left)
        delay = (clock.due - now).total_seconds()
        if delay <= 0 and what == "reminder" and clock.milestone + 1 < len(steps):
            following = max(timedelta(0), clock.target * steps[clock.milestone + 1][0] - clock.used)
            if add_business_time(cal, clock.running_since, following) <= now:
                clock.milestone += 1  # a shorter target overtook this reminder: only the latest milestone fires
                continue
        if delay > 0:
            label = f"SLA {kind} {int(share * 100)}%" + (f": escalate to {_whom(clock, who)}" if who else "")

            def look_again(target: timedelta = clock.target) -> bool:  # done, paused, or the target moved
                return clock.done_at is not None or holding(wf, kind, clock) or clock.target != target

            try:
                await workflow.wait_condition(look_again, timeout=delay, timeout_summary=label)
                continue  # reached, or paused: look again
            except TimeoutError:
                if wf.stale_reminders_skipped and what == "reminder":
                    continue  # due now: look again, so a reminder a later milestone overtook (its
                    # timer fired late, every worker down meanwhile) is skipped as above
        await _fire(wf, kind, clock, share, what, who)
        clock.milestone += 1


async def _fire(wf: Run, kind: str, clock: SlaClock, share: float, what: str, who: str | None) -> None:
    """One milestone: recorded first (nothing below may hold it up), then the breach's
    re-dispatch and the management chain, then the notification. The workflow does not
    continue as new while a milestone fires (``wf.firing``)."""
    wf.firing += 1
    try:
        await _fire_milestone(wf, kind, clock, share, what, who)
    finally:
        wf.firing -= 1


async def _fire_milestone(wf: Run, kind: str, clock: SlaClock, share: float, what: str, who: str | None) -> None:
    data = {
        "sla": kind,
        "share": share,
        "target": str(clock.target),
        "due": clock.due.isoformat() if clock.due else None,
    }
    owner = _owner(kind)
    if what == "breach":
        clock.breached_at = workflow.now()
        wf.state.sla.breached = True
    if who:
        wf.state.sla.escalation = who
        data["escalated_to"] = who
    await wf.record(f"sla_{what}", SYSTEM, data)
    if what == "breach":
        holders = _holders(wf, owner)
        await assignment.redispatch(wf, f"SLA {kind} breached", only=owner)
        clock.chain = await _managers_up(wf, holders)
    recipients = [f"role:{who}", *_level_people(clock, who)] if who else _holders(wf, owner)
    urgency = {"reminder": "normal", "breach": "high"}.get(what, "critical")
    try:
        text = f"{kind} target {clock.target} at {int(share * 100)}%" + (f", escalated to {who}" if who else "")
        await send(wf, f"sla-{kind}-{clock.milestone}", what, urgency, recipients, text)
    except ActivityError as exc:  # telling people must never stop the clock
        if wf.state.status in (TicketStatus.CLOSED, TicketStatus.CANCELLED):
            raise  # the ticket ended while we were sending: nothing more to record
        await wf.record("sla_notify_failed", SYSTEM, {"sla": kind, "reason": str(exc.cause)})


def _owner(key: str) -> str | None:
    """The node a clock belongs to ("visit.response" → "visit"); None for the ticket's clocks."""
    owner, _, _ = key.rpartition(".")
    return owner or None


def _level_people(clock: SlaClock, who: str) -> list[str]:
    """The person of the holder's management chain at this escalation level, if known."""
    level = LEVELS.index(who)
    return [clock.chain[level]] if level < len(clock.chain) else []


def _whom(clock: SlaClock, who: str) -> str:
    people = _level_people(clock, who)
    return f"{who} {people[0]}" if people else who


CHAIN_RETRY = RetryPolicy(maximum_attempts=3)


async def _managers_up(wf: Run, holders: list[str]) -> list[str]:
    """The first holder's manager, then theirs, up to one per escalation level. A directory
    that does not answer leaves the chain short: the region's role holders are told anyway."""
    start = next((h for h in holders if ":" not in h), None)
    chain: list[str] = []
    person = start
    while person and len(chain) < len(LEVELS):
        try:
            found = await workflow.execute_activity(
                "directory.resolve_people",
                PeopleQuery(manager_of=person),
                result_type=PeopleResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=CHAIN_RETRY,
                summary=f"SLA escalation chain: manager of {person}",
            )
        except ActivityError:
            break
        person = found.ids[0] if found.ids and found.ids[0] not in chain and found.ids[0] != start else None
        if person:
            chain.append(person)
    return chain


def _holders(wf: Run, owner: str | None = None) -> list[str]:
    """Who holds the work: of the clock's own node, or of every active node."""
    out = []
    for n in wf.state.active if owner is None else [owner]:
        node = wf.state.nodes.get(n)
        if node is not None:
            out += [node.assignee] if node.assignee else node.offers or [node.candidates or ""]
    return [o for o in out if o] or [wf.state.created_by]


def details(wf: Run) -> str:
    """The SLA line of the workflow's current details in the Temporal UI."""
    parts = []
    for kind, clock in wf.state.sla.clocks.items():
        if clock.done_at is not None:
            parts.append(f"{kind} met" if clock.breached_at is None else f"{kind} breached")
        elif clock.running_since is None:
            parts.append(f"{kind} paused")
        elif clock.due is not None:
            parts.append(f"{kind} next milestone {clock.due:%Y-%m-%d %H:%M} UTC")
    if wf.state.sla.escalation:
        parts.append(f"escalated to {wf.state.sla.escalation}")
    return f"\nSLA: {'; '.join(parts)}" if parts else ""


def search_attributes(wf: Run) -> list[SearchAttributeUpdate[Any]]:
    sla = wf.state.sla
    return [
        attrs.TICKET_SLA_BREACHED.value_set("true" if sla.breached else "false"),
        attrs.TICKET_ESCALATION.value_set(sla.escalation) if sla.escalation else attrs.TICKET_ESCALATION.value_unset(),
    ]
