"""TicketWorkflow: one long-running workflow per ticket (id ``ticket-<ticket_id>``).

Human actions are Updates with validators: a rejected action leaves no history and the
caller learns why at once. Every state change bumps ``seq``, upserts the search
attributes and is projected to the read model by a local activity keyed by (ticket, seq).
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.projection import record_ticket_change
    from domain.lifecycle import TERMINAL, allowed_actions, next_status
    from models import search_attributes as attrs
    from models.ticket import (
        Action,
        ActorRef,
        AssignInput,
        CancelInput,
        ClaimInput,
        CloseInput,
        CommentInput,
        ProjectionInput,
        ReopenInput,
        ResolveInput,
        StartInput,
        TicketEvent,
        TicketInput,
        TicketResult,
        TicketState,
        TicketStatus,
        initial_state,
    )

PROJECTION_TIMEOUT = timedelta(seconds=15)
PROJECTION_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
INVALID_TRANSITION = "InvalidTransition"


def workflow_id(ticket_id: str) -> str:
    return f"ticket-{ticket_id}"


@workflow.defn
class TicketWorkflow:
    @workflow.init
    def __init__(self, input: TicketInput) -> None:
        self._input = input
        self._created: ProjectionInput | None = None
        if input.carried_state is not None:
            self.state = input.carried_state
            self._projected_seq = self.state.seq
            return
        self._projected_seq = 0
        self.state = initial_state(input)
        # The creation is event 1, recorded before any update can run.
        self._created = self._change(
            "created", input.created_by, TicketStatus.NEW, {"channel": input.channel}, upsert=False
        )

    @workflow.run
    async def run(self, input: TicketInput) -> TicketResult:
        if self._created is not None:
            await self._project(self._created)
        await workflow.wait_condition(lambda: self.state.status in TERMINAL or self._history_is_long())
        # Let in-flight updates finish (and reply) before completing or continuing as new.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.state.status in TERMINAL:
            return TicketResult(state=self.state)
        workflow.continue_as_new(input.model_copy(update={"carried_state": self.state}))

    @workflow.query
    def get_state(self) -> TicketState:
        return self.state

    # --- updates: one per human action ---

    @workflow.update
    async def claim(self, input: ClaimInput) -> TicketState:
        return await self._act(Action.CLAIM, input.actor, {"assignee": input.actor.id}, assignee=input.actor.id)

    @claim.validator
    def _validate_claim(self, input: ClaimInput) -> None:
        self._check(Action.CLAIM)

    @workflow.update
    async def assign(self, input: AssignInput) -> TicketState:
        data = {"assignee": input.assignee, "previous": self.state.assignee}
        return await self._act(Action.ASSIGN, input.actor, data, assignee=input.assignee)

    @assign.validator
    def _validate_assign(self, input: AssignInput) -> None:
        self._check(Action.ASSIGN)

    @workflow.update
    async def start(self, input: StartInput) -> TicketState:
        return await self._act(Action.START, input.actor, {})

    @start.validator
    def _validate_start(self, input: StartInput) -> None:
        self._check(Action.START)

    @workflow.update
    async def resolve(self, input: ResolveInput) -> TicketState:
        data = {"resolution": input.resolution}
        return await self._act(Action.RESOLVE, input.actor, data, resolution=input.resolution)

    @resolve.validator
    def _validate_resolve(self, input: ResolveInput) -> None:
        self._check(Action.RESOLVE)

    @workflow.update
    async def reopen(self, input: ReopenInput) -> TicketState:
        return await self._act(Action.REOPEN, input.actor, {"reason": input.reason}, resolution=None)

    @reopen.validator
    def _validate_reopen(self, input: ReopenInput) -> None:
        self._check(Action.REOPEN)

    @workflow.update
    async def close(self, input: CloseInput) -> TicketState:
        return await self._act(Action.CLOSE, input.actor, {})

    @close.validator
    def _validate_close(self, input: CloseInput) -> None:
        self._check(Action.CLOSE)

    @workflow.update
    async def cancel(self, input: CancelInput) -> TicketState:
        return await self._act(Action.CANCEL, input.actor, {"reason": input.reason})

    @cancel.validator
    def _validate_cancel(self, input: CancelInput) -> None:
        self._check(Action.CANCEL)

    @workflow.update
    async def comment(self, input: CommentInput) -> TicketState:
        count = self.state.comment_count + 1
        return await self._act(Action.COMMENT, input.actor, {"text": input.text}, comment_count=count)

    @comment.validator
    def _validate_comment(self, input: CommentInput) -> None:
        self._check(Action.COMMENT)

    # --- internals ---

    def _check(self, action: Action) -> None:
        if next_status(self.state.status, action) is None:
            raise ApplicationError(
                f"cannot {action.value} a ticket that is {self.state.status.value}",
                {"status": self.state.status.value, "allowed_actions": allowed_actions(self.state.status)},
                type=INVALID_TRANSITION,
                non_retryable=True,
            )

    async def _act(self, action: Action, actor: ActorRef, data: dict[str, Any], **fields: Any) -> TicketState:
        # Check again: another update accepted in the same activation may have moved the state.
        self._check(action)
        to = next_status(self.state.status, action)
        assert to is not None
        change = self._change(action.value, actor, to, data, **fields)
        await self._project(change)
        return change.state

    def _change(
        self, action: str, actor: ActorRef, to: TicketStatus, data: dict[str, Any], upsert: bool = True, **fields: Any
    ) -> ProjectionInput:
        """Apply one state change synchronously and return what the projection must record."""
        before = self.state
        now = workflow.now()
        update: dict[str, Any] = {**fields, "status": to, "seq": before.seq + 1, "updated_at": now}
        if to in TERMINAL:
            update["closed_at"] = now
        self.state = before.model_copy(update=update)
        event = TicketEvent(
            ticket_id=before.ticket_id,
            seq=self.state.seq,
            action=action,
            actor_id=actor.id,
            from_status=before.status if before.seq else None,
            to_status=to,
            at=now,
            data=data,
        )
        if upsert:
            self._upsert_search_attributes()
        workflow.set_current_details(self._details())
        return ProjectionInput(state=self.state, event=event)

    async def _project(self, change: ProjectionInput) -> None:
        """Record one change; changes reach the read model strictly in seq order, with no gap."""
        event = change.event
        await workflow.wait_condition(lambda: self._projected_seq == event.seq - 1)
        moved = f"{event.from_status.value} → " if event.from_status else ""
        await workflow.execute_local_activity(
            record_ticket_change,
            change,
            start_to_close_timeout=PROJECTION_TIMEOUT,
            retry_policy=PROJECTION_RETRY,
            summary=f"#{event.seq} {event.action} by {event.actor_id}: {moved}{event.to_status.value}",
        )
        self._projected_seq = event.seq

    def _upsert_search_attributes(self) -> None:
        s = self.state
        workflow.upsert_search_attributes(
            [
                attrs.TICKET_STATUS.value_set(s.status.value),
                attrs.TICKET_PRIORITY.value_set(s.priority.value),
                attrs.TICKET_ASSIGNEE.value_set(s.assignee) if s.assignee else attrs.TICKET_ASSIGNEE.value_unset(),
            ]
        )

    def _details(self) -> str:
        s = self.state
        who = f", assignee **{s.assignee}**" if s.assignee else ""
        return f"Status **{s.status.value}**{who} · priority {s.priority.value} · {s.seq} changes"

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if self._input.history_limit is not None:
            return info.get_current_history_length() >= self._input.history_limit
        return info.is_continue_as_new_suggested()
