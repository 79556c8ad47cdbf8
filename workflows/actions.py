"""The action table: every Update a ticket takes, declared once.

Each row names the Update (also the API's ``/tickets/{id}/actions/<name>`` segment), its input
model (the HTTP body is that model without ``actor`` and ``proof``: ``api/routers/tickets.py``
derives it), the handler that applies it, the validator that refuses it before it is accepted
(default: the lifecycle's check of the action against the ticket's state and the actor), and
what it does. Who may take an action is ``domain/lifecycle.py``'s ``check_actor``; the refusals
an action can raise are ``domain/lifecycle.py``'s ``RefusalType``, which the API maps to HTTP in
one place. ``TicketWorkflow`` installs one Update per row; before any validator, the request's
signature, expiry, region and request id are checked (``TicketRun.admit``), and a repeat of a
request already taken returns without acting again.

Adding an action: a row here, its handler (and validator, if the default does not fit), an
``Action`` member in ``models/ticket.py``, its input model there, and a test.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import lifecycle
    from domain.geo import haversine_km
    from domain.lifecycle import TERMINAL, Refusal
    from domain.roles import is_machine
    from models.template import FieldType
    from models.ticket import (
        Action,
        ActorInput,
        ApproveInput,
        AssignInput,
        CancelInput,
        ChangePriorityInput,
        CheckInInput,
        CheckOutInput,
        ClaimInput,
        CloseInput,
        CommentInput,
        CompleteInput,
        DelegateInput,
        EventInput,
        NodeState,
        NodeStatus,
        RejectInput,
        ReopenInput,
        RequestInfoInput,
        ResolveInput,
        ReturnInput,
        StartInput,
        TicketSignal,
        TicketState,
        TicketStatus,
        Visit,
    )
    from workflows import sla
    from workflows.run import TicketRun


async def send_event(run: TicketRun, input: EventInput) -> TicketState:
    """An event (customer replied, ERP status changed…): merge the fields it may set and
    wake the nodes waiting for it."""
    run.refuse_while_moving()
    run.remember("send_event", input)
    event = run.take_event(TicketSignal(name=input.name, actor=input.actor, fields=input.fields, text=input.text))
    await run.project(event)
    return run.reply()


def validate_send_event(run: TicketRun, input: EventInput) -> None:
    run.refuse_while_moving()  # the waits of this run are gone: the next run takes it
    try:
        if run.state.status in TERMINAL:
            raise Refusal("invalid_transition", f"the ticket is {run.state.status.value}", allowed_actions=[])
        lifecycle.check_event(run.state, run.spec.event(input.name), input.name, input.actor, input.fields)
    except Refusal as refusal:
        raise run.refused(refusal) from None


async def claim(run: TicketRun, input: ClaimInput) -> TicketState:
    node = await run.ready(Action.CLAIM, input, input.node)
    run.set_node(node, status=NodeStatus.ASSIGNED, assignee=input.actor.id)
    data = {"node": node.id, "assignee": input.actor.id}
    return await run.record("claim", input.actor, data, assignee=input.actor.id)


async def assign(run: TicketRun, input: AssignInput) -> TicketState:
    node = await run.ready(Action.ASSIGN, input, input.node)
    previous = node.assignee
    status = NodeStatus.IN_PROGRESS if node.status == NodeStatus.IN_PROGRESS else NodeStatus.ASSIGNED
    run.set_node(node, status=status, assignee=input.assignee)
    node.delegations = {}
    data = {"node": node.id, "assignee": input.assignee, "previous": previous}
    run.tell("assigned", "normal", [input.assignee], f"assigned by {input.actor.id}")
    return await run.record("assign", input.actor, data, assignee=input.assignee)


async def start(run: TicketRun, input: StartInput) -> TicketState:
    node = await run.ready(Action.START, input, input.node)
    run.set_node(node, status=NodeStatus.IN_PROGRESS)
    return await run.record("start", input.actor, {"node": node.id})


async def complete(run: TicketRun, input: CompleteInput) -> TicketState:
    return await run.complete(Action.COMPLETE, input)


def validate_complete(run: TicketRun, input: CompleteInput) -> None:
    if run.settled():
        run.check_complete(Action.COMPLETE, input)


async def resolve(run: TicketRun, input: ResolveInput) -> TicketState:
    return await run.complete(Action.RESOLVE, input)


def validate_resolve(run: TicketRun, input: ResolveInput) -> None:
    if run.settled():
        run.check_complete(Action.RESOLVE, input)


async def approve(run: TicketRun, input: ApproveInput) -> TicketState:
    node = await run.ready(Action.APPROVE, input, input.node)
    return await run.vote(node, input.actor, "approve", input.reason)


async def reject(run: TicketRun, input: RejectInput) -> TicketState:
    node = await run.ready(Action.REJECT, input, input.node)
    return await run.vote(node, input.actor, "reject", input.reason)


async def delegate(run: TicketRun, input: DelegateInput) -> TicketState:
    await run.ready(Action.DELEGATE, input, input.node, remember=False)
    node = run.check_handover(Action.DELEGATE, input, input.to)
    run.remember(Action.DELEGATE.value, input)
    if node.type == "approval":
        node.approvers = [input.to if a == input.actor.id else a for a in node.approvers]
        node.delegations[input.to] = node.delegations.pop(input.actor.id, input.actor.id)
        event = "approval_needed"
    else:
        holder = node.assignee or input.actor.id
        node.delegations = {input.to: node.delegations.get(holder, holder)}
        node.assignee = input.to
        event = "assigned"
    data = {"node": node.id, "to": input.to, "from": input.actor.id, "reason": input.reason}
    run.tell(
        event, "normal", [input.to], f"delegated by {input.actor.id}" + (f": {input.reason}" if input.reason else "")
    )
    if node.type == "approval":
        return await run.record("delegate", input.actor, data)
    return await run.record("delegate", input.actor, data, assignee=input.to)


def validate_delegate(run: TicketRun, input: DelegateInput) -> None:
    if input.to == input.actor.id:
        raise run.refused(Refusal("not_allowed", "cannot delegate to yourself"))
    if run.state.status in TERMINAL or run.settled():
        run.check_handover(Action.DELEGATE, input, input.to)


async def return_(run: TicketRun, input: ReturnInput) -> TicketState:
    await run.ready(Action.RETURN, input, input.node, remember=False)
    node = run.check_handover(Action.RETURN, input)
    run.remember(Action.RETURN.value, input)
    mine = [input.actor.id] if input.actor.id in node.delegations else list(node.delegations)
    back = {d: node.delegations.pop(d) for d in mine}
    if node.type == "approval":
        node.approvers = [back.get(a, a) for a in node.approvers]
    else:
        node.assignee = back[mine[0]]
    data = {"node": node.id, "returned": back, "reason": input.reason}
    run.tell("assigned", "normal", list(back.values()), f"returned by {input.actor.id}")
    if node.type == "approval":
        return await run.record("return", input.actor, data)
    return await run.record("return", input.actor, data, assignee=node.assignee)


def validate_return(run: TicketRun, input: ReturnInput) -> None:
    if run.state.status in TERMINAL or run.settled():
        run.check_handover(Action.RETURN, input)


async def request_info(run: TicketRun, input: RequestInfoInput) -> TicketState:
    node = run.check_info_request(await run.ready(Action.REQUEST_INFO, input, input.node, remember=False))
    run.remember(Action.REQUEST_INFO.value, input)
    node.awaiting_info = input.question
    node.info_requests += 1
    contacts = [run.state.fields.get(f.name) for f in run.spec.fields if f.type in (FieldType.PHONE, FieldType.EMAIL)]
    run.tell(
        "info_requested", "high", [run.state.created_by, *(c for c in contacts if isinstance(c, str))], input.question
    )
    return await run.record("request_info", input.actor, {"node": node.id, "question": input.question})


def validate_request_info(run: TicketRun, input: RequestInfoInput) -> None:
    if run.state.status in TERMINAL or run.settled():
        run.check_info_request(run.check(Action.REQUEST_INFO, input.actor, input.node))


def _distance_m(run: TicketRun, node: NodeState, lat: float, lon: float) -> tuple[float | None, bool]:
    """How far (lat, lon) is from the task's site, and whether that is beyond its radius; a
    check-in beyond it under ``outside: refuse`` is refused naming the distance."""
    spec = run.spec.node(node.id).on_site
    site = run.state.fields.get(spec.site_field) if spec is not None else None
    if spec is None or not isinstance(site, dict) or "lat" not in site or "lon" not in site:
        return None, False
    metres = round(haversine_km(lat, lon, float(site["lat"]), float(site["lon"])) * 1000, 1)
    far = metres > spec.radius_m
    if far and spec.outside == "refuse":
        message = f"{metres:.0f} m from the site: check in within {spec.radius_m} m"
        raise run.refused(Refusal("too_far", message, field="lat", distance_m=metres, radius_m=spec.radius_m))
    return metres, far


async def check_in(run: TicketRun, input: CheckInInput) -> TicketState:
    node = await run.ready(Action.CHECK_IN, input, input.node, remember=False)
    metres, far = _distance_m(run, node, input.lat, input.lon)
    run.remember(Action.CHECK_IN.value, input)
    node.visits.append(
        Visit(
            by=input.actor.id,
            checked_in_at=workflow.now(),
            lat=input.lat,
            lon=input.lon,
            distance_m=metres,
            far=far,
            photos_before=list(input.photos),
        )
    )
    data = {"node": node.id, "lat": input.lat, "lon": input.lon, "distance_m": metres, "far": far}
    return await run.record("check_in", input.actor, {**data, "photos": list(input.photos), "note": input.note})


def validate_check_in(run: TicketRun, input: CheckInInput) -> None:
    if run.state.status in TERMINAL or run.settled():
        _distance_m(run, run.check(Action.CHECK_IN, input.actor, input.node), input.lat, input.lon)


async def check_out(run: TicketRun, input: CheckOutInput) -> TicketState:
    node = await run.ready(Action.CHECK_OUT, input, input.node)
    visit = node.visits[-1]
    visit.checked_out_at, visit.out_lat, visit.out_lon = workflow.now(), input.lat, input.lon
    visit.photos_after, visit.signature = list(input.photos), input.signature
    minutes = (visit.checked_out_at - visit.checked_in_at).total_seconds() / 60
    data = {"node": node.id, "lat": input.lat, "lon": input.lon, "minutes_on_site": round(minutes, 1)}
    extra = {"photos": list(input.photos), "signature": input.signature, "note": input.note}
    return await run.record("check_out", input.actor, {**data, **extra})


async def change_priority(run: TicketRun, input: ChangePriorityInput) -> TicketState:
    await run.ready(Action.CHANGE_PRIORITY, input, None)
    previous = run.state.priority
    run.state.priority = input.priority
    retargeted = sla.retarget(run)
    data = {"from": previous.value, "to": input.priority.value, "reason": input.reason, "sla": retargeted}
    return await run.record("change_priority", input.actor, data)


def validate_change_priority(run: TicketRun, input: ChangePriorityInput) -> None:
    run.precheck(Action.CHANGE_PRIORITY, input.actor, None)
    if input.priority == run.state.priority:
        raise run.refused(Refusal("invalid_transition", f"the priority is {input.priority.value} already"))


async def reopen(run: TicketRun, input: ReopenInput) -> TicketState:
    await run.ready(Action.REOPEN, input, None)
    last_task = next((n for n in reversed(run.state.path) if run.spec.node(n).type == "task"), None)
    if last_task is not None:
        run.state.nodes[last_task].status = NodeStatus.IN_PROGRESS
        run.state.nodes[last_task].completed_at = None
        run.state.cursor = last_task
        if last_task not in run.state.active:
            run.state.active.append(last_task)
    run.reached_end = False
    run.reopened = True
    run.state.resolution = None
    return await run.record("reopen", input.actor, {"reason": input.reason, "node": last_task})


async def close(run: TicketRun, input: CloseInput) -> TicketState:
    await run.ready(Action.CLOSE, input, None)
    return await run.record("close", input.actor, {}, status=TicketStatus.CLOSED)


async def cancel(run: TicketRun, input: CancelInput) -> TicketState:
    await run.ready(Action.CANCEL, input, None)
    for node_id in run.state.active:
        run.state.nodes[node_id].status = NodeStatus.CANCELLED
    run.state.active = []
    return await run.record("cancel", input.actor, {"reason": input.reason}, status=TicketStatus.CANCELLED)


async def comment(run: TicketRun, input: CommentInput) -> TicketState:
    await run.ready(Action.COMMENT, input, None)
    run.state.comment_count += 1
    return await run.record("comment", input.actor, {"text": input.text})


Handler = Callable[[TicketRun, Any], Awaitable[TicketState]]
Validator = Callable[[TicketRun, Any], None]


@dataclass(frozen=True)
class ActionDef:
    name: str  # the Update's name
    input: type[ActorInput]
    handle: Handler
    summary: str
    action: Action | None = None  # the lifecycle action it is (None: an event)
    validate: Validator | None = None  # None: lifecycle's check of the action now, if the walk is settled

    def check(self, run: TicketRun, input: Any) -> None:
        """The validator: the request first (signed, fresh, in region, id not reused), then the action."""
        run.admit(self.name, input)
        if run.seen(input) is not None:
            return  # a repeat of a request already taken: the handler answers with the state
        # A machine account sends events; the one action it may take is reopening a ticket it
        # raised itself (a business system's alarm came back: lifecycle checks it is the requester).
        if self.action not in (None, Action.REOPEN) and is_machine(input.actor.roles):
            raise run.refused(Refusal("not_allowed", f"{input.actor.id} is a channel account: it sends events only"))
        if self.validate is not None:
            self.validate(run, input)
        elif self.action is not None:
            run.precheck(self.action, input.actor, getattr(input, "node", None))

    async def take(self, run: TicketRun, input: Any) -> TicketState:
        """The handler: a repeat of a request already taken returns without acting again."""
        if (seen := run.seen(input)) is not None:
            return seen
        return await self.handle(run, input)


A = Action
ACTIONS: dict[str, ActionDef] = {
    d.name: d
    for d in [
        ActionDef("claim", ClaimInput, claim, "Take an open task as your own.", A.CLAIM),
        ActionDef("assign", AssignInput, assign, "Assign, reassign or delegate a task.", A.ASSIGN),
        ActionDef("start", StartInput, start, "Begin work on your task.", A.START),
        ActionDef(
            "complete", CompleteInput, complete, "Finish your task with its form data.", A.COMPLETE, validate_complete
        ),
        ActionDef("resolve", ResolveInput, resolve, "Finish your task with a resolution.", A.RESOLVE, validate_resolve),
        ActionDef("approve", ApproveInput, approve, "Approve at your approval level.", A.APPROVE),
        ActionDef("reject", RejectInput, reject, "Reject with a reason.", A.REJECT),
        ActionDef("reopen", ReopenInput, reopen, "Send a resolved ticket back to work.", A.REOPEN),
        ActionDef("close", CloseInput, close, "Close a resolved ticket (final).", A.CLOSE),
        ActionDef("cancel", CancelInput, cancel, "Cancel an open ticket (final).", A.CANCEL),
        ActionDef("comment", CommentInput, comment, "Add a comment.", A.COMMENT),
        ActionDef(
            "delegate",
            DelegateInput,
            delegate,
            "Hand your task or vote to someone for now.",
            A.DELEGATE,
            validate_delegate,
        ),
        ActionDef("return", ReturnInput, return_, "Give a delegated task or vote back.", A.RETURN, validate_return),
        ActionDef(
            "change_priority",
            ChangePriorityInput,
            change_priority,
            "Change the priority; the SLA deadlines are recomputed.",
            A.CHANGE_PRIORITY,
            validate_change_priority,
        ),
        ActionDef(
            "check_in",
            CheckInInput,
            check_in,
            "Arrive on site at your task (coordinates, photos before).",
            A.CHECK_IN,
            validate_check_in,
        ),
        ActionDef(
            "check_out",
            CheckOutInput,
            check_out,
            "Leave the site (photos after, the customer's signature); the time on site is priced.",
            A.CHECK_OUT,
        ),
        ActionDef(
            "request_info",
            RequestInfoInput,
            request_info,
            "Ask the customer; the SLA pauses until their customer_reply event.",
            A.REQUEST_INFO,
            validate_request_info,
        ),
        ActionDef(
            "send_event", EventInput, send_event, "An event the ticket's template declares.", None, validate_send_event
        ),
    ]
}
