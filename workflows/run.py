"""TicketRun: the engine of one ticket's run — its state, its walk through the template, its
change log and the projector, notifier and strands that serve them.

``TicketWorkflow`` (``workflows/ticket.py``) is only the Temporal surface; node interpreters
(``workflows/nodes/``), SLA clocks (``workflows/sla.py``) and assignment
(``workflows/assignment.py``) receive this object typed as ``workflows.protocol.Run``, which
names what they may call; the action handlers (``workflows/actions.py``) use the rest.
Every state change bumps ``seq``, upserts the search attributes and is projected to the read
model, in seq order, by a local activity keyed by (ticket, seq).
"""

import asyncio
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.directory import is_active
    from activities.projection import record_ticket_changes
    from domain import lifecycle, signing
    from domain.expressions import TICKET_VARS, condition, evaluate
    from domain.lifecycle import REFUSAL_TYPES, TERMINAL, Refusal, RefusalType
    from models import search_attributes as attrs
    from models.calendar import BusinessCalendar
    from models.template import FieldType, TemplateSpec
    from models.ticket import (
        CUSTOMER_REPLY,
        MAX_SEEN_REQUESTS,
        SYSTEM,
        Action,
        ActorInput,
        ActorRef,
        CompleteInput,
        DelegateInput,
        EarlyEvent,
        NodeState,
        NodeStatus,
        PersonLeft,
        ProjectionInput,
        ReturnInput,
        SeenRequest,
        TicketEvent,
        TicketInput,
        TicketResult,
        TicketSignal,
        TicketState,
        TicketStatus,
        Vote,
        initial_state,
    )
    from workflows import aftercare, assignment, sla
    from workflows.nodes import END, HANDLERS
    from workflows.nodes.approval import replace_approver
    from workflows.nodes.notify import deliver, message
    from workflows.nodes.spawn import cancel_children
    from workflows.nodes.stock import release_all

PROJECTION_TIMEOUT = timedelta(seconds=15)
MAX_UNCLAIMED = 50  # events kept for waits that have not opened yet
PROJECTION_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
# Patches (workflow.patched): histories recorded before them replay the old way.
SIGNED_EVENTS = "events-are-signed-updates"  # the ``event`` signal is refused; events are an update
VERIFIED_DEPARTURES = "departures-are-verified"  # person_left is acted on only for an inactive person
# One patch per release for the changes that ship together (each marker is a history event in
# every new run): release 2026-12-05 brings
#  - notification keys from ticket, seq and event, not the run id (``business_keys``);
#  - the ticket's clocks start at created_at, not at the first task (``sla_from_intake``);
#  - the read model written by a regular activity, not a local one (``projection_activity``);
#  - a reminder due after a later milestone (every worker down meanwhile) skipped;
#  - only the search attributes that changed upserted (``lean_upserts``).
RELEASE_2026_12_05 = "release-2026-12-05"
# Release 2026-12-06 brings a prompt walk (``prompt_walk``): the walk's own records (offers, SLA
# milestones, "resolved"…, by SYSTEM) no longer wait each for its own projection round; they go
# in the projector's next batch, and whoever replies (an action's handler, ``after_move``) still
# waits until the read model holds what it answers with. A walk settles in one task, not one
# projection round per step (bench/lifecycle.py). An action's own change still waits for its
# round before ``after_move`` looks: that wait is what lets the walk wake first, so the reply
# shows where the walk went.
RELEASE_2026_12_06 = "release-2026-12-06"
_NOT_YET = object()  # a search attribute this run has not upserted


class TicketRun:
    """One run of a ticket's workflow (a continue-as-new starts the next from its state)."""

    def __init__(self, input: TicketInput) -> None:
        self._input = input
        self.spec: TemplateSpec = input.template.spec
        self._types = {**TICKET_VARS, **{f.name: f.type for f in self.spec.fields}}
        self._created: TicketEvent | None = None
        self._unrecorded: list[TicketEvent] = []  # changes the projection has not written yet
        self.reached_end = False
        self.reopened = False
        # Strands of the walk that are running (not waiting): the main walk plus parallel branches.
        # 0 means every strand waits on people, timers or events: the state is settled.
        self._busy = 1
        self.signals: list[TicketSignal] = []
        self._untold: list[dict[str, Any]] = []  # notifications queued for the notifier
        self._telling = False
        self._told = 0  # before NOTIFY_BUSINESS_KEYS
        self._told_at: dict[tuple[str, str], int] = {}  # tells of one event after one change
        self._clocks: list[asyncio.Task[None]] = []
        self.firing = 0  # SLA milestones being fired (recorded, re-dispatched, told)
        self.draining = False  # handing over to the next run (continue-as-new): no new steps
        # Patches since 2026-12-05 are asked once, here, in the run's first task: asked mid-walk,
        # a marker's place among the commands would hang on the order in which concurrent
        # strands resume — the very thing that differs between running and replaying.
        release = workflow.patched(RELEASE_2026_12_05)
        self.business_keys = self.sla_from_intake = self.projection_activity = release
        self.stale_reminders_skipped = self.lean_upserts = release
        self.prompt_walk = workflow.patched(RELEASE_2026_12_06)
        self._upserted: dict[str, Any] = {}  # what this run last upserted, by search attribute
        if input.carried_state is not None:
            self.state = input.carried_state
            self._projected_seq = self.state.seq
            for node in self.state.nodes.values():  # events are counted afresh in this run
                if node.type == "wait" and node.status == NodeStatus.WAITING:
                    node.signals_before = 0
            self.reached_end = self.state.status == TicketStatus.RESOLVED
            return
        self._projected_seq = 0
        self.state = initial_state(input)
        defaults = {f.name: f.default for f in self.spec.fields if f.default is not None}
        self.state.fields = {**defaults, **self.state.fields}
        # The creation is event 1, recorded before any update can run.
        self._created = self.change("created", input.created_by, {"channel": input.channel}, upsert=False)

    async def run(self, input: TicketInput) -> TicketResult:
        projector = asyncio.create_task(self._projector())
        notifier = asyncio.create_task(self._notifier())
        if self._created is not None:
            sla.start_clocks(self)
            if not self.prompt_walk:
                await self.project(self._created)
        self._clocks += [
            asyncio.create_task(sla.run_clock(self, kind, self.calendar)) for kind in self.state.sla.clocks
        ]
        walker = asyncio.create_task(self._drive())
        departures = asyncio.create_task(self._departures())
        # Continue as new only between steps: every strand waiting (none inside an activity), no
        # SLA milestone half-fired and no departure half-handled, so the next run resumes each
        # step from a consistent state. From then on actions are refused as "moving" (the API
        # retries them on the next run) and departures wait in the state for the next run.
        await workflow.wait_condition(
            lambda: (
                self.state.status in TERMINAL
                or (
                    self._history_is_long()
                    and self.settled()
                    and self.firing == 0
                    and not self.state.pending_departures
                )
            )
        )
        self.draining = self.state.status not in TERMINAL
        walker.cancel()
        departures.cancel()
        for clock in self._clocks:
            clock.cancel()
        if self.state.status == TicketStatus.CANCELLED and self.state.reservations:
            released = await asyncio.shield(release_all(self))
            await self.record("parts_released", SYSTEM, {"released": released})
        if self.state.status == TicketStatus.CANCELLED and self.state.children:
            await asyncio.shield(cancel_children(self))  # per the spawn node's on_cancel
        if self.state.status == TicketStatus.CLOSED:
            await aftercare.on_closed(self)
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
            if not self.reached_end:
                await self.walk(self.state.cursor or self.spec.start)
                self.reached_end = True
                await self.record("resolved", SYSTEM, {})
                self.tell("resolved", "normal", [self.state.created_by], self.state.resolution)
                await aftercare.on_resolved(self)
            self.reopened = False
            await self.wait(lambda: self.reopened)

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

    def settled(self) -> bool:
        return self._busy == 0

    def add_strands(self, n: int) -> None:
        """``n`` parallel branches start (positive) or end (negative) running."""
        self._busy += n

    async def walk(
        self, node_id: str, stop_at: str | None = None, frame: str | None = None, branch: str | None = None
    ) -> str:
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
            node_id = await HANDLERS[node.type](self, node, branch)  # type: ignore[operator]
        return node_id

    # --- queries ---

    def take_event(self, signal: TicketSignal) -> TicketEvent:
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
        return self.change(f"event:{signal.name}", signal.actor, data)

    def queue_departure(self, left: PersonLeft) -> None:
        """A person was deactivated: kept in the state until ``_departures`` takes their work back."""
        if self.state.status not in TERMINAL and left.person_id not in {
            p.person_id for p in self.state.pending_departures
        }:
            self.state.pending_departures = [*self.state.pending_departures, left]

    async def _departures(self) -> None:
        """One departure at a time, between steps: the tasks the person holds are given again
        without them and the votes they owe pass on (``assignment.release``, ``replace_approver``);
        delegations they made are dropped, so nothing is ever handed back to them."""
        while True:
            await workflow.wait_condition(lambda: bool(self.state.pending_departures) and self.settled())
            left = self.state.pending_departures[0]
            self.firing += 1  # one step: no continue-as-new half-way
            try:
                # Anyone with a Temporal client can send this signal: act only on a person the
                # directory shows as deactivated.
                if workflow.patched(VERIFIED_DEPARTURES) and await workflow.execute_activity(
                    is_active,
                    left.person_id,
                    start_to_close_timeout=timedelta(seconds=30),
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

    def evaluate(self, expression: str) -> Any:
        """An expression's value over the ticket (an action node's inputs)."""
        return evaluate(expression, self._types | {"ticket_id": FieldType.TEXT}, self.values())

    def open_node(self, node: Any, branch: str | None, status: NodeStatus, **fields: Any) -> tuple[NodeState, bool]:
        """The node's state: resumed when it is still open (reopen, continue-as-new), else new."""
        current = self.state.nodes.get(node.id)
        if current is not None and current.status not in (NodeStatus.DONE, NodeStatus.CANCELLED):
            if node.id not in self.state.active:
                self.state.active.append(node.id)
            return current, False
        state = NodeState(
            id=node.id,
            type=node.type,
            name=node.name,
            status=status,
            branch=branch,
            started_at=workflow.now(),
            **fields,
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
        if not to:
            return
        if self.business_keys:
            # From business facts: the change it follows (seq) and the event; ``notify.send``
            # adds channel and recipient. A reset or a later run telling the same fact makes
            # the same keys, so the outbox sends it once.
            key = f"s{self.state.seq}"
            self._told_at[(key, event)] = n = self._told_at.get((key, event), 0) + 1
            key += f".{n}" if n > 1 else ""
        else:  # histories recorded before the patch: the run id (a reset sent again)
            self._told += 1
            key = f"{workflow.info().run_id}:{self._told}"
        self._untold.append(message(self, key, event, urgency, to, text))

    async def record(self, action: str, actor: ActorRef, data: dict[str, Any], **fields: Any) -> TicketState:
        """Apply a change now; return once the read model has it (with the state at that moment).
        In a prompt walk the walk's own records (by SYSTEM) return at once: nobody waits on
        their reply, and they go in the projector's next batch."""
        event = self.change(action, actor, data, **fields)
        if not (self.prompt_walk and actor.id == SYSTEM.id):
            await self.project(event)
        return self.reply()

    # --- internals ---

    def set_node(self, node: NodeState, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(node, key, value)

    def precheck(self, action: Action, actor: ActorRef, node_id: str | None) -> None:
        """Validator: refuse now when the walk is settled; otherwise the handler checks once it is."""
        if self.state.status in TERMINAL or self.settled():
            self.check(action, actor, node_id)

    async def ready(self, action: Action, input: ActorInput, node_id: str | None, remember: bool = True) -> NodeState:
        """Handler: wait until the walk settles, then check again (another action may have won).
        While the run hands over to the next one, refuse with ``TicketMoving``: the caller
        retries and reaches the next run. Once the action is sure to be taken, its request id is
        remembered (a repeat returns without acting again)."""
        await workflow.wait_condition(lambda: self.settled() or self.state.status in TERMINAL or self.draining)
        if not self.settled():
            self.refuse_while_moving()
        node = self.check(action, input.actor, node_id)
        if remember:  # else the handler remembers it after its own checks
            self.remember(action.value, input)
        return node

    def refuse_while_moving(self) -> None:
        """While the run hands over to the next one, refuse with ``TicketMoving``: the caller
        sends it again and reaches the next run."""
        if self.draining and self.state.status not in TERMINAL:
            raise ApplicationError(
                "the ticket is moving to a new run; retry",
                {"kind": "moving"},
                type=RefusalType.MOVING,
                non_retryable=True,
            )

    # --- requests: signed by the API, taken once ---

    def admit(self, name: str, input: ActorInput) -> None:
        """Validator, before anything else: the API signed this very input for this ticket, it
        has not expired, the actor works in the ticket's region, and its request id was not
        used for another request. Whoever sent it (API, Temporal UI, a script), an actor the
        API did not vouch for is refused, and a refused update leaves no history."""
        proof = input.proof
        if proof is None:
            raise self.request_refused(
                RefusalType.UNSIGNED, "unsigned: actions reach tickets through the Ticketflow API"
            )
        payload = input.model_dump(mode="json")
        payload["proof"]["signature"] = ""
        why = signing.verify(proof.key_id, proof.signature, self.state.ticket_id, name, payload)
        if why is not None:
            raise self.request_refused(RefusalType.UNSIGNED, why)
        if proof.expires_at < workflow.now():
            raise self.request_refused(
                RefusalType.EXPIRED, f"the request expired at {proof.expires_at.isoformat()}: not taken"
            )
        seen = self.state.requests.get(proof.request_id)
        if seen is not None and (seen.name != name or seen.digest != self.digest(input)):
            raise self.request_refused(RefusalType.KEY_REUSED, "this request id was already used for another request")
        try:
            lifecycle.check_region(self.state, input.actor)
        except Refusal as refusal:
            raise self.refused(refusal) from None

    @staticmethod
    def digest(input: ActorInput) -> str:
        return signing.digest(input.model_dump(mode="json", exclude={"proof"}))

    def seen(self, input: ActorInput) -> TicketState | None:
        """The reply to a repeat of a request this ticket already took (after a continue-as-new:
        within one run Temporal itself answers a repeated update id with the first outcome)."""
        if input.proof is not None and input.proof.request_id in self.state.requests:
            return self.reply()
        return None

    def remember(self, name: str, input: ActorInput) -> None:
        if input.proof is None:
            return
        seen = dict(self.state.requests)
        seen[input.proof.request_id] = SeenRequest(name=name, digest=self.digest(input), seq=self.state.seq)
        self.state.requests = dict(list(seen.items())[-MAX_SEEN_REQUESTS:])

    def request_refused(self, type_: str, message: str) -> ApplicationError:
        return ApplicationError(
            message, {"kind": "request", "status": self.state.status.value}, type=type_, non_retryable=True
        )

    def check(self, action: Action, actor: ActorRef, node_id: str | None) -> NodeState:
        try:
            node = (
                lifecycle.target_node(self.state, action, node_id, actor) if action in lifecycle.NODE_ACTIONS else None
            )
            if action not in lifecycle.allowed_actions(self.state):
                lifecycle.target_node(self.state, action, None)  # raises the invalid-transition refusal
            lifecycle.check_actor(self.state, action, actor, node)
        except Refusal as refusal:
            raise self.refused(refusal) from None
        return node  # type: ignore[return-value]

    def check_handover(self, action: Action, input: DelegateInput | ReturnInput, to: str | None = None) -> NodeState:
        node = self.check(action, input.actor, input.node)
        try:
            lifecycle.check_handover(self.state, node, action, input.actor, to)
        except Refusal as refusal:
            raise self.refused(refusal) from None
        return node

    def check_info_request(self, node: NodeState) -> NodeState:
        try:
            lifecycle.check_info_request(node, self.spec.sla_policy.max_info_requests)
        except Refusal as refusal:
            raise self.refused(refusal) from None
        return node

    def refused(self, refusal: Refusal) -> ApplicationError:
        return ApplicationError(
            refusal.message,
            {"kind": refusal.kind, "status": self.state.status.value, **refusal.details},
            type=REFUSAL_TYPES[refusal.kind],
            non_retryable=True,
        )

    def check_complete(self, action: Action, input: CompleteInput) -> NodeState:
        node = self.check(action, input.actor, input.node)
        try:
            lifecycle.check_frozen(self.state, input.fields)
        except Refusal as refusal:
            raise self.refused(refusal) from None
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

    async def complete(self, action: Action, input: CompleteInput) -> TicketState:
        await self.ready(action, input, input.node, remember=False)
        node = self.check_complete(action, input)
        self.remember(action.value, input)
        self.state.fields = {**self.state.fields, **input.fields}
        if input.resolution is not None:
            self.state.resolution = input.resolution
        self.close_node(node, "completed")
        data = {"node": node.id, "fields": input.fields, "resolution": input.resolution}
        await self.record(action.value, input.actor, {k: v for k, v in data.items() if v})
        return await self.after_move()

    async def vote(
        self, node: NodeState, actor: ActorRef, decision: Literal["approve", "reject"], reason: str | None
    ) -> TicketState:
        node.votes.append(
            Vote(actor_id=actor.id, decision=decision, reason=reason, level=node.level, at=workflow.now())
        )
        level_name = node.levels[node.level] if node.level < len(node.levels) else ""
        data = {"node": node.id, "level": node.level + 1, "level_name": level_name, "reason": reason}
        await self.record(decision, actor, data)
        return await self.after_move()

    async def after_move(self) -> TicketState:
        """The state once the walk has moved on (next task opened, end reached…), for the reply."""
        await workflow.wait_condition(lambda: self.settled() or self.state.status in TERMINAL or self.draining)
        await workflow.wait_condition(lambda: self._projected_seq == self.state.seq)
        return self.reply()

    def reply(self) -> TicketState:
        """An Update's answer: the state as it is now. No copy: the SDK turns a handler's result
        into its payload as the handler returns, before any other coroutine of the workflow runs
        (a deep copy of the state per reply cost more than the payload itself). A caller that
        keeps the answer past an ``await`` copies it itself."""
        return self.state

    def change(
        self, action: str, actor: ActorRef, data: dict[str, Any], upsert: bool = True, **fields: Any
    ) -> TicketEvent:
        """Apply one state change synchronously and queue its event for the projection."""
        before_status = self.state.status if self.state.seq else None
        now = workflow.now()
        for key, value in fields.items():
            setattr(self.state, key, value)
        if self.state.active:  # open work: whoever holds it (or nobody); finished: who did the last of it
            self.state.assignee = lifecycle.current_assignee(self.state)
        self.state.status = lifecycle.derive_status(self.state, self.reached_end)
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

    async def project(self, event: TicketEvent) -> None:
        """Wait until the read model holds ``event`` (the projector writes changes in seq order)."""
        await workflow.wait_condition(lambda: self._projected_seq >= event.seq)

    async def _projector(self) -> None:
        """One writer: every change not yet recorded goes in one activity, in seq order."""
        while True:
            await workflow.wait_condition(lambda: bool(self._unrecorded))
            events, self._unrecorded = self._unrecorded, []
            summary = "; ".join(f"#{e.seq} {e.action}{self._where(e)} by {e.actor_id}" for e in events)
            change = ProjectionInput(state=self.state, events=events)
            summary = f"{summary} → {self.state.status.value}"
            if self.projection_activity:
                # A regular activity: its completion is an event in the history, so it reaches
                # the workflow in the same task whether it runs or replays. A local activity's
                # result could reach it a task earlier on replay than it did live, and with SLA
                # timers and other activities completing meanwhile the commands came out in
                # another order (tests/histories/races/).
                await workflow.execute_activity(
                    record_ticket_changes,
                    change,
                    start_to_close_timeout=PROJECTION_TIMEOUT,
                    retry_policy=PROJECTION_RETRY,
                    summary=summary,
                )
            else:  # histories recorded before the projection-activity patch
                await workflow.execute_local_activity(
                    record_ticket_changes,
                    change,
                    start_to_close_timeout=PROJECTION_TIMEOUT,
                    retry_policy=PROJECTION_RETRY,
                    summary=summary,
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
                self.change("notify_failed", SYSTEM, {"event": payload["event"], "reason": str(exc.cause or exc)})
            finally:
                self._telling = False

    @staticmethod
    def _where(event: TicketEvent) -> str:
        return f" @{event.data['node']}" if isinstance(event.data.get("node"), str) else ""

    def _upsert_search_attributes(self) -> None:
        s = self.state
        assignees = [a for n in s.active if (a := s.nodes[n].assignee)] + ([s.assignee] if s.assignee else [])
        updates = [
            attrs.TICKET_STATUS.value_set(s.status.value),
            attrs.TICKET_PRIORITY.value_set(s.priority.value),
            attrs.TICKET_ASSIGNEE.value_set(assignees[0]) if assignees else attrs.TICKET_ASSIGNEE.value_unset(),
            *sla.search_attributes(self),
        ]
        if self.lean_upserts:
            # Only what changed since this run last upserted (a comment, a task opening, the
            # walk's own records change none): no command and no history event for nothing.
            updates = [u for u in updates if self._upserted.get(u.key.name, _NOT_YET) != u.value]
            if not updates:
                return
            self._upserted.update((u.key.name, u.value) for u in updates)
        workflow.upsert_search_attributes(updates)

    @staticmethod
    def _who(node: NodeState) -> str:
        if node.assignee:
            return node.assignee
        if node.offers:
            return "offered to " + ", ".join(node.offers)
        return node.candidates or node.status.value

    def _details(self) -> str:
        s = self.state
        at = ", ".join(f"{n} ({self._who(s.nodes[n])})" for n in s.active)
        where = f" at **{at}**" if at else ""
        return f"Status **{s.status.value}**{where} · priority {s.priority.value} · {s.seq} changes{sla.details(self)}"

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if self._input.history_limit is not None:
            return info.get_current_history_length() >= self._input.history_limit
        return info.is_continue_as_new_suggested()
