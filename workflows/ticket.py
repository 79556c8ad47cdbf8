"""TicketWorkflow: one long-running workflow per ticket (id ``ticket-<ticket_id>``).

It walks the graph of the template version the ticket started with (carried in its input,
so editing the template never changes a running ticket). Node interpreters live in
``workflows/nodes/``. Human actions are Updates with validators: a refused action leaves no
history and the caller learns why at once. Every state change bumps ``seq``, upserts the
search attributes and is projected to the read model, in seq order, by a local activity
keyed by (ticket, seq).
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.directory import is_active
    from activities.projection import record_ticket_changes
    from domain import lifecycle, signing
    from domain.expressions import TICKET_VARS, condition
    from domain.lifecycle import TERMINAL, Refusal
    from models import search_attributes as attrs
    from models.template import FieldType, TemplateSpec
    from models.ticket import (
        SYSTEM,
        Action,
        ActorInput,
        ActorRef,
        ApproveInput,
        AssignInput,
        CancelInput,
        CUSTOMER_REPLY,
        ChangePriorityInput,
        ClaimInput,
        CloseInput,
        CommentInput,
        CompleteInput,
        DelegateInput,
        EarlyEvent,
        EventInput,
        MAX_SEEN_REQUESTS,
        NodeState,
        NodeStatus,
        PersonLeft,
        ProjectionInput,
        RejectInput,
        ReopenInput,
        RequestInfoInput,
        ResolveInput,
        ReturnInput,
        SeenRequest,
        StartInput,
        TicketEvent,
        TicketInput,
        TicketResult,
        TicketSignal,
        TicketState,
        TicketStatus,
        Vote,
        initial_state,
    )
    from workflows.nodes import END, HANDLERS
    from models.calendar import BusinessCalendar
    from workflows import assignment, sla
    from workflows.nodes.approval import replace_approver
    from workflows.nodes.notify import deliver, message
    from workflows.nodes.stock import release_all

PROJECTION_TIMEOUT = timedelta(seconds=15)
MAX_UNCLAIMED = 50  # events kept for waits that have not opened yet
PROJECTION_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
# ApplicationError types a refused update carries (the API maps them to HTTP statuses).
INVALID_TRANSITION = "InvalidTransition"
MOVING = "TicketMoving"  # an action arrived while the run continues as new: retry it
REFUSAL_TYPES = {
    "invalid_transition": INVALID_TRANSITION,
    "not_allowed": "NotAllowed",
    "ambiguous": "NodeAmbiguous",
    "already_voted": "AlreadyVoted",
    "form": "FormIncomplete",
    "frozen": "FieldFrozen",
    "event": "EventRefused",
}
# The request itself is refused (domain/signing.py): not signed by the API, or too late.
UNSIGNED = "RequestNotSigned"
EXPIRED = "RequestExpired"
KEY_REUSED = "IdempotencyKeyReused"
# Patches (workflow.patched): histories recorded before them replay the old way.
SIGNED_EVENTS = "events-are-signed-updates"  # the ``event`` signal is refused; events are an update
VERIFIED_DEPARTURES = "departures-are-verified"  # person_left is acted on only for an inactive person


def workflow_id(ticket_id: str) -> str:
    return f"ticket-{ticket_id}"


@workflow.defn
class TicketWorkflow:
    @workflow.init
    def __init__(self, input: TicketInput) -> None:
        self._input = input
        self.spec: TemplateSpec = input.template.spec
        self._types = {**TICKET_VARS, **{f.name: f.type for f in self.spec.fields}}
        self._created: TicketEvent | None = None
        self._unrecorded: list[TicketEvent] = []  # changes the projection has not written yet
        self._reached_end = False
        self._reopened = False
        # Strands of the walk that are running (not waiting): the main walk plus parallel branches.
        # 0 means every strand waits on people, timers or events: the state is settled.
        self._busy = 1
        self.signals: list[TicketSignal] = []
        self._untold: list[dict[str, Any]] = []  # notifications queued for the notifier
        self._telling = False
        self._told = 0
        self._clocks: list[asyncio.Task] = []
        self.firing = 0  # SLA milestones being fired (recorded, re-dispatched, told)
        self._draining = False  # handing over to the next run (continue-as-new): no new steps
        if input.carried_state is not None:
            self.state = input.carried_state
            self._projected_seq = self.state.seq
            for node in self.state.nodes.values():  # events are counted afresh in this run
                if node.type == "wait" and node.status == NodeStatus.WAITING:
                    node.result["signals_before"] = 0
            self._reached_end = self.state.status == TicketStatus.RESOLVED
            return
        self._projected_seq = 0
        self.state = initial_state(input)
        defaults = {f.name: f.default for f in self.spec.fields if f.default is not None}
        self.state.fields = {**defaults, **self.state.fields}
        # The creation is event 1, recorded before any update can run.
        self._created = self._change("created", input.created_by, {"channel": input.channel}, upsert=False)

    @workflow.run
    async def run(self, input: TicketInput) -> TicketResult:
        projector = asyncio.create_task(self._projector())
        notifier = asyncio.create_task(self._notifier())
        if self._created is not None:
            sla.start_clocks(self)
            await self._project(self._created)
        self._clocks += [asyncio.create_task(sla.run_clock(self, kind, self.calendar)) for kind in self.state.sla.clocks]
        walker = asyncio.create_task(self._drive())
        departures = asyncio.create_task(self._departures())
        # Continue as new only between steps: every strand waiting (none inside an activity), no
        # SLA milestone half-fired and no departure half-handled, so the next run resumes each
        # step from a consistent state. From then on actions are refused as "moving" (the API
        # retries them on the next run) and departures wait in the state for the next run.
        await workflow.wait_condition(
            lambda: self.state.status in TERMINAL
            or (self._history_is_long() and self._settled() and self.firing == 0 and not self.state.pending_departures)
        )
        self._draining = self.state.status not in TERMINAL
        walker.cancel()
        departures.cancel()
        for clock in self._clocks:
            clock.cancel()
        if self.state.status == TicketStatus.CANCELLED and self.state.reservations:
            released = await asyncio.shield(release_all(self))
            await self.record("parts_released", SYSTEM, {"released": released})
        # Let in-flight updates finish (and reply) before completing or continuing as new.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.wait_condition(lambda: not self._untold and not self._telling)
        await workflow.wait_condition(lambda: self._projected_seq == self.state.seq)
        projector.cancel()
        notifier.cancel()
        if self.state.status in TERMINAL:
            return TicketResult(state=self.state)
        workflow.continue_as_new(input.model_copy(update={"carried_state": self.state}))

    async def _drive(self) -> None:
        """Walk the process; after the end, wait for close (done) or reopen (walk again)."""
        while True:
            if not self._reached_end:
                await self.walk(self.state.cursor or self.spec.start)
                self._reached_end = True
                await self.record("resolved", SYSTEM, {})
                self.tell("resolved", "normal", [self.state.created_by], self.state.resolution)
            self._reopened = False
            await self.wait(lambda: self._reopened)

    async def wait(self, predicate: Any, timeout: timedelta | None = None, summary: str | None = None) -> None:
        """Wait (for people, timers, events) as a settled walk: actions validate against this state."""
        self._busy -= 1
        try:
            await workflow.wait_condition(predicate, timeout=timeout, timeout_summary=summary)
        finally:
            self._busy += 1

    async def idle(self, awaitable: Any) -> Any:
        """Await sub-walks (parallel branches) without counting as a running step."""
        self._busy -= 1
        try:
            return await awaitable
        finally:
            self._busy += 1

    def _settled(self) -> bool:
        return self._busy == 0

    async def walk(self, node_id: str, stop_at: str | None = None, frame: str | None = None, branch: str | None = None) -> str:
        """Run nodes from ``node_id`` until ``stop_at`` (a parallel join) or an end node."""
        while node_id != stop_at:
            if frame is not None and branch is not None:
                self.state.branches[frame][branch] = node_id
            else:
                self.state.cursor = node_id
            node = self.spec.node(node_id)
            if node.type == "end":
                self.state.path.append(node.id)
                return END
            node_id = await HANDLERS[node.type](self, node, branch)
        return node_id

    # --- queries ---

    @workflow.query
    def get_state(self) -> TicketState:
        return self.state

    # --- signals ---

    @workflow.signal
    def event(self, signal: TicketSignal) -> None:
        """Tickets started before events were declared and signed took them as this signal; a
        run with the patch refuses it (anyone with a Temporal client could send one): events are
        the ``send_event`` update, checked against the template's declaration."""
        if workflow.patched(SIGNED_EVENTS):
            workflow.logger.warning("refused an unsigned %r event signal: send events through the API", signal.name)
            return
        if self.state.status in TERMINAL:
            return
        self._take_event(signal)

    @workflow.update
    async def send_event(self, input: EventInput) -> TicketState:
        """An event (customer replied, ERP status changed…): merge the fields it may set and
        wake the nodes waiting for it. The API waits only until it is accepted."""
        if (seen := self._seen(input)) is not None:
            return seen
        self._refuse_while_moving()
        self._remember("send_event", input)
        event = self._take_event(TicketSignal(name=input.name, actor=input.actor, fields=input.fields, text=input.text))
        await self._project(event)
        return self.state.model_copy(deep=True)

    @send_event.validator
    def _validate_send_event(self, input: EventInput) -> None:
        self._admit("send_event", input)
        self._refuse_while_moving()  # the waits of this run are gone: the next run takes it
        try:
            if self.state.status in TERMINAL:
                raise Refusal("invalid_transition", f"the ticket is {self.state.status.value}", allowed_actions=[])
            lifecycle.check_event(self.state, self.spec.event(input.name), input.name, input.actor, input.fields)
        except Refusal as refusal:
            raise self._refused(refusal) from None

    def _take_event(self, signal: TicketSignal) -> TicketEvent:
        if signal.fields:
            self.state.fields = {**self.state.fields, **signal.fields}
        self.signals.append(signal)
        data: dict[str, Any] = {"fields": signal.fields, "text": signal.text}
        if signal.name == CUSTOMER_REPLY:
            answered = [n for n in self.state.active if self.state.nodes[n].awaiting_info is not None]
            for node_id in answered:  # the SLA clocks resume
                self.state.nodes[node_id].awaiting_info = None
                self.tell("info_received", "normal", [self.state.nodes[node_id].assignee or ""], signal.text)
            data["answers"] = answered
        waiting = any(
            self.state.nodes[n].type == "wait" and self.spec.node(n).signal == signal.name for n in self.state.active
        )
        if not waiting and not data.get("answers"):  # kept for a wait that opens later
            early = EarlyEvent(name=signal.name, at=workflow.now())
            self.state.unclaimed_events = [*self.state.unclaimed_events, early][-MAX_UNCLAIMED:]
        return self._change(f"event:{signal.name}", signal.actor, data)

    @workflow.signal
    def person_left(self, input: PersonLeft) -> None:
        """A person was deactivated: queued in the state; ``_departures`` takes their work back."""
        if self.state.status not in TERMINAL and input.person_id not in {p.person_id for p in self.state.pending_departures}:
            self.state.pending_departures = [*self.state.pending_departures, input]

    async def _departures(self) -> None:
        """One departure at a time, between steps: the tasks the person holds are given again
        without them and the votes they owe pass on (``assignment.release``, ``replace_approver``);
        delegations they made are dropped, so nothing is ever handed back to them."""
        while True:
            await workflow.wait_condition(lambda: bool(self.state.pending_departures) and self._settled())
            left = self.state.pending_departures[0]
            self.firing += 1  # one step: no continue-as-new half-way
            try:
                # Anyone with a Temporal client can send this signal: act only on a person the
                # directory shows as deactivated.
                if workflow.patched(VERIFIED_DEPARTURES) and await workflow.execute_activity(
                    is_active, left.person_id, start_to_close_timeout=timedelta(seconds=30),
                    summary=f"is {left.person_id} still active?",
                ):
                    await self.record("departure_ignored", SYSTEM, {"person": left.person_id, "reason": "still active"})
                    self.state.pending_departures = self.state.pending_departures[1:]
                    continue
                for node_id in list(self.state.active):
                    node = self.state.nodes.get(node_id)
                    if node is None or node_id not in self.state.active:
                        continue
                    spec = self.spec.node(node_id)
                    if node.type == "task":
                        await assignment.release(self, spec, node, left.person_id, left.reason)
                    elif node.type == "approval":
                        await replace_approver(self, spec, node, left.person_id, left.reason)
            finally:
                self.firing -= 1
            self.state.pending_departures = self.state.pending_departures[1:]

    # --- updates: one per human action ---

    @workflow.update
    async def claim(self, input: ClaimInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        node = await self._ready(Action.CLAIM, input, input.node)
        self._set_node(node, status=NodeStatus.ASSIGNED, assignee=input.actor.id)
        data = {"node": node.id, "assignee": input.actor.id}
        return await self.record("claim", input.actor, data, assignee=input.actor.id)

    @claim.validator
    def _validate_claim(self, input: ClaimInput) -> None:
        self._admit("claim", input)
        self._precheck(Action.CLAIM, input.actor, input.node)

    @workflow.update
    async def assign(self, input: AssignInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        node = await self._ready(Action.ASSIGN, input, input.node)
        previous = node.assignee
        status = NodeStatus.IN_PROGRESS if node.status == NodeStatus.IN_PROGRESS else NodeStatus.ASSIGNED
        self._set_node(node, status=status, assignee=input.assignee)
        node.delegations = {}
        data = {"node": node.id, "assignee": input.assignee, "previous": previous}
        self.tell("assigned", "normal", [input.assignee], f"assigned by {input.actor.id}")
        return await self.record("assign", input.actor, data, assignee=input.assignee)

    @assign.validator
    def _validate_assign(self, input: AssignInput) -> None:
        self._admit("assign", input)
        self._precheck(Action.ASSIGN, input.actor, input.node)

    @workflow.update
    async def start(self, input: StartInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        node = await self._ready(Action.START, input, input.node)
        self._set_node(node, status=NodeStatus.IN_PROGRESS)
        return await self.record("start", input.actor, {"node": node.id})

    @start.validator
    def _validate_start(self, input: StartInput) -> None:
        self._admit("start", input)
        self._precheck(Action.START, input.actor, input.node)

    @workflow.update
    async def complete(self, input: CompleteInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        return await self._complete(Action.COMPLETE, input)

    @complete.validator
    def _validate_complete(self, input: CompleteInput) -> None:
        self._admit("complete", input)
        if self._settled():
            self._check_complete(Action.COMPLETE, input)

    @workflow.update
    async def resolve(self, input: ResolveInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        return await self._complete(Action.RESOLVE, input)

    @resolve.validator
    def _validate_resolve(self, input: ResolveInput) -> None:
        self._admit("resolve", input)
        if self._settled():
            self._check_complete(Action.RESOLVE, input)

    @workflow.update
    async def approve(self, input: ApproveInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        node = await self._ready(Action.APPROVE, input, input.node)
        return await self._vote(node, input.actor, "approve", input.reason)

    @approve.validator
    def _validate_approve(self, input: ApproveInput) -> None:
        self._admit("approve", input)
        self._precheck(Action.APPROVE, input.actor, input.node)

    @workflow.update
    async def reject(self, input: RejectInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        node = await self._ready(Action.REJECT, input, input.node)
        return await self._vote(node, input.actor, "reject", input.reason)

    @reject.validator
    def _validate_reject(self, input: RejectInput) -> None:
        self._admit("reject", input)
        self._precheck(Action.REJECT, input.actor, input.node)

    @workflow.update
    async def delegate(self, input: DelegateInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.DELEGATE, input, input.node, remember=False)
        node = self._check_handover(Action.DELEGATE, input, input.to)
        self._remember(Action.DELEGATE.value, input)
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
        self.tell(event, "normal", [input.to], f"delegated by {input.actor.id}" + (f": {input.reason}" if input.reason else ""))
        if node.type == "approval":
            return await self.record("delegate", input.actor, data)
        return await self.record("delegate", input.actor, data, assignee=input.to)

    @delegate.validator
    def _validate_delegate(self, input: DelegateInput) -> None:
        self._admit("delegate", input)
        if input.to == input.actor.id:
            raise ApplicationError("cannot delegate to yourself", {"kind": "invalid"}, type="NotAllowed", non_retryable=True)
        if self.state.status in TERMINAL or self._settled():
            self._check_handover(Action.DELEGATE, input, input.to)

    @workflow.update(name="return")
    async def return_(self, input: ReturnInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.RETURN, input, input.node, remember=False)
        node = self._check_handover(Action.RETURN, input)
        self._remember(Action.RETURN.value, input)
        mine = [input.actor.id] if input.actor.id in node.delegations else list(node.delegations)
        back = {d: node.delegations.pop(d) for d in mine}
        if node.type == "approval":
            node.approvers = [back.get(a, a) for a in node.approvers]
        else:
            node.assignee = back[mine[0]]
        data = {"node": node.id, "returned": back, "reason": input.reason}
        self.tell("assigned", "normal", list(back.values()), f"returned by {input.actor.id}")
        if node.type == "approval":
            return await self.record("return", input.actor, data)
        return await self.record("return", input.actor, data, assignee=node.assignee)

    @return_.validator
    def _validate_return(self, input: ReturnInput) -> None:
        self._admit("return", input)
        if self.state.status in TERMINAL or self._settled():
            self._check_handover(Action.RETURN, input)

    @workflow.update
    async def request_info(self, input: RequestInfoInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        node = self._check_info_request(await self._ready(Action.REQUEST_INFO, input, input.node, remember=False))
        self._remember(Action.REQUEST_INFO.value, input)
        node.awaiting_info = input.question
        node.info_requests += 1
        contacts = [self.state.fields.get(f.name) for f in self.spec.fields if f.type in (FieldType.PHONE, FieldType.EMAIL)]
        self.tell("info_requested", "high", [self.state.created_by, *(c for c in contacts if isinstance(c, str))], input.question)
        return await self.record("request_info", input.actor, {"node": node.id, "question": input.question})

    @request_info.validator
    def _validate_request_info(self, input: RequestInfoInput) -> None:
        self._admit("request_info", input)
        if self.state.status in TERMINAL or self._settled():
            self._check_info_request(self._check(Action.REQUEST_INFO, input.actor, input.node))

    @workflow.update
    async def change_priority(self, input: ChangePriorityInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.CHANGE_PRIORITY, input, None)
        previous = self.state.priority
        self.state.priority = input.priority
        retargeted = sla.retarget(self)
        data = {"from": previous.value, "to": input.priority.value, "reason": input.reason, "sla": retargeted}
        return await self.record("change_priority", input.actor, data)

    @change_priority.validator
    def _validate_change_priority(self, input: ChangePriorityInput) -> None:
        self._admit("change_priority", input)
        self._precheck(Action.CHANGE_PRIORITY, input.actor, None)
        if input.priority == self.state.priority:
            raise self._refused(Refusal("invalid_transition", f"the priority is {input.priority.value} already"))

    @workflow.update
    async def reopen(self, input: ReopenInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.REOPEN, input, None)
        last_task = next((n for n in reversed(self.state.path) if self.spec.node(n).type == "task"), None)
        if last_task is not None:
            self.state.nodes[last_task].status = NodeStatus.IN_PROGRESS
            self.state.nodes[last_task].completed_at = None
            self.state.cursor = last_task
            if last_task not in self.state.active:
                self.state.active.append(last_task)
        self._reached_end = False
        self._reopened = True
        self.state.resolution = None
        return await self.record("reopen", input.actor, {"reason": input.reason, "node": last_task})

    @reopen.validator
    def _validate_reopen(self, input: ReopenInput) -> None:
        self._admit("reopen", input)
        self._precheck(Action.REOPEN, input.actor, None)

    @workflow.update
    async def close(self, input: CloseInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.CLOSE, input, None)
        return await self.record("close", input.actor, {}, status=TicketStatus.CLOSED)

    @close.validator
    def _validate_close(self, input: CloseInput) -> None:
        self._admit("close", input)
        self._precheck(Action.CLOSE, input.actor, None)

    @workflow.update
    async def cancel(self, input: CancelInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.CANCEL, input, None)
        for node_id in self.state.active:
            self.state.nodes[node_id].status = NodeStatus.CANCELLED
        self.state.active = []
        return await self.record("cancel", input.actor, {"reason": input.reason}, status=TicketStatus.CANCELLED)

    @cancel.validator
    def _validate_cancel(self, input: CancelInput) -> None:
        self._admit("cancel", input)
        self._precheck(Action.CANCEL, input.actor, None)

    @workflow.update
    async def comment(self, input: CommentInput) -> TicketState:
        if (seen := self._seen(input)) is not None:
            return seen
        await self._ready(Action.COMMENT, input, None)
        self.state.comment_count += 1
        return await self.record("comment", input.actor, {"text": input.text})

    @comment.validator
    def _validate_comment(self, input: CommentInput) -> None:
        self._admit("comment", input)
        self._precheck(Action.COMMENT, input.actor, None)

    # --- helpers the node interpreters use ---

    def start_clocks(self, keys: list[str]) -> None:
        """Run SLA clocks added while the ticket runs (a task's own SLA)."""
        self._clocks += [asyncio.create_task(sla.run_clock(self, key, self.calendar)) for key in keys]

    @property
    def calendar(self) -> BusinessCalendar:
        """The region's business calendar (24x7 UTC when the ticket has none)."""
        return self._input.calendar or BusinessCalendar.always_open("UTC")

    def values(self) -> dict[str, Any]:
        s = self.state
        ticket = {"priority": s.priority.value, "channel": s.channel, "region": s.region}
        ticket |= {"ticket_type": s.ticket_type, "title": s.title, "description": s.description}
        return {**s.fields, **ticket, "ticket_id": s.ticket_id}

    def holds(self, expression: str) -> bool:
        return condition(expression, self._types | {"ticket_id": FieldType.TEXT}, self.values())

    def open_node(self, node: Any, branch: str | None, status: NodeStatus, **fields: Any) -> tuple[NodeState, bool]:
        """The node's state: resumed when it is still open (reopen, continue-as-new), else new."""
        current = self.state.nodes.get(node.id)
        if current is not None and current.status not in (NodeStatus.DONE, NodeStatus.CANCELLED):
            if node.id not in self.state.active:
                self.state.active.append(node.id)
            return current, False
        state = NodeState(
            id=node.id, type=node.type, name=node.name, status=status, branch=branch, started_at=workflow.now(), **fields
        )
        self.state.nodes[node.id] = state
        self.state.active.append(node.id)
        self.state.path.append(node.id)
        return state, True

    def close_node(self, node: NodeState, outcome: str | None) -> None:
        node.status = NodeStatus.DONE
        node.outcome = outcome
        node.completed_at = workflow.now()
        if node.id in self.state.active:
            self.state.active.remove(node.id)

    def tell(self, event: str, urgency: str, to: list[str], text: str | None = None) -> None:
        """Queue a notification (sent by the notifier in the background; updates never wait for it)."""
        to = [t for t in dict.fromkeys(to) if t]
        if to:
            self._told += 1  # with the run id: unique, and the same on replay
            key = f"{workflow.info().run_id}:{self._told}"
            self._untold.append(message(self, key, event, urgency, to, text))

    async def record(self, action: str, actor: ActorRef, data: dict[str, Any], **fields: Any) -> TicketState:
        """Apply a change now; return once the read model has it (with the state at that moment)."""
        await self._project(self._change(action, actor, data, **fields))
        return self.state.model_copy(deep=True)

    # --- internals ---

    def _set_node(self, node: NodeState, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(node, key, value)

    def _precheck(self, action: Action, actor: ActorRef, node_id: str | None) -> None:
        """Validator: refuse now when the walk is settled; otherwise the handler checks once it is."""
        if self.state.status in TERMINAL or self._settled():
            self._check(action, actor, node_id)

    async def _ready(self, action: Action, input: ActorInput, node_id: str | None, remember: bool = True) -> NodeState:
        """Handler: wait until the walk settles, then check again (another action may have won).
        While the run hands over to the next one, refuse with ``TicketMoving``: the caller
        retries and reaches the next run. Once the action is sure to be taken, its request id is
        remembered (a repeat returns without acting again)."""
        await workflow.wait_condition(lambda: self._settled() or self.state.status in TERMINAL or self._draining)
        if not self._settled():
            self._refuse_while_moving()
        node = self._check(action, input.actor, node_id)
        if remember:  # else the handler remembers it after its own checks
            self._remember(action.value, input)
        return node

    def _refuse_while_moving(self) -> None:
        """While the run hands over to the next one, refuse with ``TicketMoving``: the caller
        sends it again and reaches the next run."""
        if self._draining and self.state.status not in TERMINAL:
            raise ApplicationError(
                "the ticket is moving to a new run; retry", {"kind": "moving"}, type=MOVING, non_retryable=True
            )

    # --- requests: signed by the API, taken once ---

    def _admit(self, name: str, input: ActorInput) -> None:
        """Validator, before anything else: the API signed this very input for this ticket, it
        has not expired, the actor works in the ticket's region, and its request id was not
        used for another request. Whoever sent it (API, Temporal UI, a script), an actor the
        API did not vouch for is refused, and a refused update leaves no history."""
        proof = input.proof
        if proof is None:
            raise self._request_refused(UNSIGNED, "unsigned: actions reach tickets through the Ticketflow API")
        payload = input.model_dump(mode="json")
        payload["proof"]["signature"] = ""
        why = signing.verify(proof.key_id, proof.signature, self.state.ticket_id, name, payload)
        if why is not None:
            raise self._request_refused(UNSIGNED, why)
        if proof.expires_at < workflow.now():
            raise self._request_refused(EXPIRED, f"the request expired at {proof.expires_at.isoformat()}: not taken")
        seen = self.state.requests.get(proof.request_id)
        if seen is not None and (seen.name != name or seen.digest != self._digest(input)):
            raise self._request_refused(KEY_REUSED, "this request id was already used for another request")
        try:
            lifecycle.check_region(self.state, input.actor)
        except Refusal as refusal:
            raise self._refused(refusal) from None

    @staticmethod
    def _digest(input: ActorInput) -> str:
        return signing.digest(input.model_dump(mode="json", exclude={"proof"}))

    def _seen(self, input: ActorInput) -> TicketState | None:
        """The reply to a repeat of a request this ticket already took (after a continue-as-new:
        within one run Temporal itself answers a repeated update id with the first outcome)."""
        if input.proof is not None and input.proof.request_id in self.state.requests:
            return self.state.model_copy(deep=True)
        return None

    def _remember(self, name: str, input: ActorInput) -> None:
        if input.proof is None:
            return
        seen = dict(self.state.requests)
        seen[input.proof.request_id] = SeenRequest(name=name, digest=self._digest(input), seq=self.state.seq)
        self.state.requests = dict(list(seen.items())[-MAX_SEEN_REQUESTS:])

    def _request_refused(self, type_: str, message: str) -> ApplicationError:
        return ApplicationError(message, {"kind": "request", "status": self.state.status.value}, type=type_,
                                non_retryable=True)

    def _check(self, action: Action, actor: ActorRef, node_id: str | None) -> NodeState:
        try:
            node = lifecycle.target_node(self.state, action, node_id, actor) if action in lifecycle.NODE_ACTIONS else None
            if action not in lifecycle.allowed_actions(self.state):
                lifecycle.target_node(self.state, action, None)  # raises the invalid-transition refusal
            lifecycle.check_actor(self.state, action, actor, node)
        except Refusal as refusal:
            raise self._refused(refusal) from None
        return node  # type: ignore[return-value]

    def _check_handover(self, action: Action, input: DelegateInput | ReturnInput, to: str | None = None) -> NodeState:
        node = self._check(action, input.actor, input.node)
        try:
            lifecycle.check_handover(self.state, node, action, input.actor, to)
        except Refusal as refusal:
            raise self._refused(refusal) from None
        return node

    def _check_info_request(self, node: NodeState) -> NodeState:
        try:
            lifecycle.check_info_request(node, self.spec.sla_policy.max_info_requests)
        except Refusal as refusal:
            raise self._refused(refusal) from None
        return node

    def _refused(self, refusal: Refusal) -> ApplicationError:
        return ApplicationError(
            refusal.message,
            {"kind": refusal.kind, "status": self.state.status.value, **refusal.details},
            type=REFUSAL_TYPES[refusal.kind],
            non_retryable=True,
        )

    def _check_complete(self, action: Action, input: CompleteInput) -> NodeState:
        node = self._check(action, input.actor, input.node)
        try:
            lifecycle.check_frozen(self.state, input.fields)
        except Refusal as refusal:
            raise self._refused(refusal) from None
        spec = self.spec.node(node.id)
        extra = sorted(set(input.fields) - set(spec.form))
        merged = {**self.state.fields, **input.fields}
        missing = [f for f in spec.required if merged.get(f) in (None, "", [])]
        if extra or missing:
            problems = [{"field": f, "msg": f"not editable at {node.id}"} for f in extra]
            problems += [{"field": f, "msg": "required to complete this step"} for f in missing]
            raise ApplicationError(
                f"cannot complete {node.id}: " + "; ".join(f"{p['field']} {p['msg']}" for p in problems),
                {"kind": "form", "status": self.state.status.value, "problems": problems},
                type=REFUSAL_TYPES["form"],
                non_retryable=True,
            )
        return node

    async def _complete(self, action: Action, input: CompleteInput) -> TicketState:
        await self._ready(action, input, input.node, remember=False)
        node = self._check_complete(action, input)
        self._remember(action.value, input)
        self.state.fields = {**self.state.fields, **input.fields}
        if input.resolution is not None:
            self.state.resolution = input.resolution
        self.close_node(node, "completed")
        data = {"node": node.id, "fields": input.fields, "resolution": input.resolution}
        await self.record(action.value, input.actor, {k: v for k, v in data.items() if v})
        return await self._after_move()

    async def _vote(self, node: NodeState, actor: ActorRef, decision: str, reason: str | None) -> TicketState:
        node.votes.append(Vote(actor_id=actor.id, decision=decision, reason=reason, level=node.level, at=workflow.now()))
        level_name = node.levels[node.level] if node.level < len(node.levels) else ""
        data = {"node": node.id, "level": node.level + 1, "level_name": level_name, "reason": reason}
        await self.record(decision, actor, data)
        return await self._after_move()

    async def _after_move(self) -> TicketState:
        """The state once the walk has moved on (next task opened, end reached…), for the reply."""
        await workflow.wait_condition(lambda: self._settled() or self.state.status in TERMINAL or self._draining)
        await workflow.wait_condition(lambda: self._projected_seq == self.state.seq)
        return self.state.model_copy(deep=True)

    def _change(self, action: str, actor: ActorRef, data: dict[str, Any], upsert: bool = True, **fields: Any) -> TicketEvent:
        """Apply one state change synchronously and queue its event for the projection."""
        before_status = self.state.status if self.state.seq else None
        now = workflow.now()
        for key, value in fields.items():
            setattr(self.state, key, value)
        if self.state.active:  # open work: whoever holds it (or nobody); finished: who did the last of it
            self.state.assignee = lifecycle.current_assignee(self.state)
        self.state.status = lifecycle.derive_status(self.state, self._reached_end)
        if self.state.status != before_status:
            since = self.state.status_since or now
            if before_status is not None:
                spent = self.state.time_in_status.get(before_status.value, 0.0) + (now - since).total_seconds()
                self.state.time_in_status[before_status.value] = spent
            self.state.status_since = now
        self.state.seq += 1
        self.state.updated_at = now
        if self.state.status in TERMINAL:
            self.state.closed_at = now
        event = TicketEvent(
            ticket_id=self.state.ticket_id,
            seq=self.state.seq,
            action=action,
            actor_id=actor.id,
            from_status=before_status,
            to_status=self.state.status,
            at=now,
            data=data,
        )
        sla.on_change(self, action, actor.id, data.get("node") if isinstance(data.get("node"), str) else None)
        if upsert:
            self._upsert_search_attributes()
        workflow.set_current_details(self._details())
        self._unrecorded.append(event)
        return event

    async def _project(self, event: TicketEvent) -> None:
        """Wait until the read model holds ``event`` (the projector writes changes in seq order)."""
        await workflow.wait_condition(lambda: self._projected_seq >= event.seq)

    async def _projector(self) -> None:
        """One writer: every change not yet recorded goes in one local activity, in seq order."""
        while True:
            await workflow.wait_condition(lambda: bool(self._unrecorded))
            events, self._unrecorded = self._unrecorded, []
            summary = "; ".join(f"#{e.seq} {e.action}{self._where(e)} by {e.actor_id}" for e in events)
            await workflow.execute_local_activity(
                record_ticket_changes,
                ProjectionInput(state=self.state, events=events),
                start_to_close_timeout=PROJECTION_TIMEOUT,
                retry_policy=PROJECTION_RETRY,
                summary=f"{summary} → {self.state.status.value}",
            )
            self._projected_seq = events[-1].seq

    async def _notifier(self) -> None:
        """One sender: queued notifications go out in order through ``notify.send`` (its outbox
        de-duplicates retries); a failure is recorded and never stops the ticket."""
        while True:
            await workflow.wait_condition(lambda: bool(self._untold))
            payload = self._untold.pop(0)
            self._telling = True
            try:
                await deliver(payload)
            except ActivityError as exc:
                self._change("notify_failed", SYSTEM, {"event": payload["event"], "reason": str(exc.cause or exc)})
            finally:
                self._telling = False

    @staticmethod
    def _where(event: TicketEvent) -> str:
        return f" @{event.data['node']}" if isinstance(event.data.get("node"), str) else ""

    def _upsert_search_attributes(self) -> None:
        s = self.state
        assignees = [s.nodes[n].assignee for n in s.active if s.nodes[n].assignee] + ([s.assignee] if s.assignee else [])
        workflow.upsert_search_attributes(
            [
                attrs.TICKET_STATUS.value_set(s.status.value),
                attrs.TICKET_PRIORITY.value_set(s.priority.value),
                attrs.TICKET_ASSIGNEE.value_set(assignees[0]) if assignees else attrs.TICKET_ASSIGNEE.value_unset(),
                *sla.search_attributes(self),
            ]
        )

    def _details(self) -> str:
        s = self.state
        at = ", ".join(f"{n} ({s.nodes[n].assignee or s.nodes[n].candidates or s.nodes[n].status.value})" for n in s.active)
        where = f" at **{at}**" if at else ""
        return f"Status **{s.status.value}**{where} · priority {s.priority.value} · {s.seq} changes{sla.details(self)}"

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if self._input.history_limit is not None:
            return info.get_current_history_length() >= self._input.history_limit
        return info.is_continue_as_new_suggested()
