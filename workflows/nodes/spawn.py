"""``spawn``: open child tickets of other types (child workflows) and wait for all of them, or
for the first to finish (docs/linked-tickets.md).

Each child is prepared by ``children.prepare`` (intake without the start: template, region and
calendar, validated form values, the intake row) and started here with ``start_child_workflow``
under ``ParentClosePolicy.ABANDON``: the parent's run ending — completed, or continued as new —
never touches a child; cancelling children is the parent's decision (``cancel_children``, per the
node's ``on_cancel``). Its id comes from a business key (parent, node, child, visit of the
node), so nothing opens a child twice.

While the parent's run lasts, each child's handle tells it when the child ends. A handle does not
survive continue-as-new: the next run finds the children in ``state.children`` and asks
``children.status`` (the read model, which a child writes its final state to before its workflow
completes) at once and then after a durable timer that doubles up to ``POLL_MAX``. The handle is
awaited behind ``asyncio.shield``: cancelling the walk (continue-as-new, the parent cancelled)
must not send the child a cancellation request.

A child the parent cannot open (its form values do not fit its template) is recorded as
``child_refused``, the requester and the supervisors are told, and the node goes on with the
others (with none, at once).
"""

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from domain.expressions import ExpressionError
    from domain.ids import ticket_id_for_key
    from domain.lifecycle import TERMINAL
    from models import search_attributes as attrs
    from models.children import (
        CancelChildren,
        CancelledChildren,
        ChildIds,
        ChildStatuses,
        PrepareChild,
        child_key,
    )
    from models.template import ChildSpec, SpawnNode
    from models.ticket import SYSTEM, ChildTicket, NodeStatus, TicketInput, TicketResult, TicketStatus
    from workflows.protocol import Run

Handle = workflow.ChildWorkflowHandle[Any, TicketResult]

PREPARE_TIMEOUT = timedelta(seconds=60)
STATUS_TIMEOUT = timedelta(seconds=60)
CANCEL_TIMEOUT = timedelta(minutes=2)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
CANCEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=20
)
POLL_FIRST = timedelta(minutes=1)  # after a continue-as-new: ask again this long after the first answer…
POLL_MAX = timedelta(minutes=30)  # …doubling up to this


async def run(wf: Run, node: SpawnNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    visit = wf.state.path.count(node.id)  # walking the node again (a reopen) opens new children
    refused: list[int] = list(state.result.get("refused", []))
    ids: list[str] = []
    handles: dict[str, Handle] = {}
    for index, child in enumerate(node.children):
        child_id = ticket_id_for_key(child_key(wf.state.ticket_id, node.id, index, visit))
        if child_id in wf.state.children:  # opened before this run (continue-as-new)
            ids.append(child_id)
            continue
        if index in refused:
            continue
        opened, handle = await _open(wf, node, index, child, visit)
        if not opened:
            refused.append(index)
            state.result = {**state.result, "refused": refused}
            continue
        ids.append(child_id)
        if handle is not None:
            handles[child_id] = handle
    watchers = [asyncio.create_task(_watch(wf, node, cid, handle)) for cid, handle in handles.items()]
    try:
        await _wait(wf, node, ids, set(handles))
    finally:
        for watcher in watchers:
            watcher.cancel()
    finished = {cid: wf.state.children[cid].status.value for cid in ids}
    outcome = "none_opened" if not ids else "all_finished" if node.wait == "all" else "first_finished"
    state.result = {**state.result, "children": ids}
    wf.close_node(state, outcome)
    await wf.record("children_done", SYSTEM, {"node": node.id, "outcome": outcome, "children": finished})
    return node.next


async def _open(wf: Run, node: SpawnNode, index: int, child: ChildSpec, visit: int) -> tuple[bool, Handle | None]:
    """Prepare and start one child: (opened, its handle — None if it had been started before)."""
    key = child_key(wf.state.ticket_id, node.id, index, visit)
    title = (child.title.replace("{title}", wf.state.title)[:200]).strip() or child.ticket_type
    try:
        fields = {name: _value(wf, expr) for name, expr in child.fields.items()}
        prepared: TicketInput = await workflow.execute_activity(
            "children.prepare",
            PrepareChild(
                key=key,
                parent_id=wf.state.ticket_id,
                node=node.id,
                ticket_type=child.ticket_type,
                region=wf.state.region,
                priority=wf.state.priority,
                title=title,
                description=f"Opened by ticket {wf.state.ticket_id} ({node.name or node.id}).",
                fields=fields,
                customer_id=wf.state.customer_id,
                reporter=wf.state.reporter,
            ),
            result_type=TicketInput,
            start_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=RETRY,
            summary=f"{node.id}: prepare child {index + 1} ({child.ticket_type})",
        )
    except (ActivityError, ExpressionError) as exc:
        await _refused(wf, node, index, child, exc)
        return False, None
    handle: Handle | None
    try:
        handle = await workflow.start_child_workflow(
            "TicketWorkflow",
            prepared,
            id=f"ticket-{prepared.ticket_id}",
            result_type=TicketResult,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attrs.at_start(
                TicketStatus.NEW.value, prepared.region, prepared.priority.value, prepared.ticket_type
            ),
            static_summary=f"{prepared.template.spec.name} · child of {wf.state.ticket_id}: {prepared.title}",
            static_details=f"Ticket **{prepared.ticket_id}**, opened by ticket {wf.state.ticket_id} at {node.id}",
        )
    except WorkflowAlreadyStartedError:
        handle = None  # started by an earlier attempt: its status is polled
    wf.state.children[prepared.ticket_id] = ChildTicket(
        node=node.id, ticket_type=prepared.ticket_type, cancel_with_parent=node.on_cancel == "cancel"
    )
    data = {"node": node.id, "child": prepared.ticket_id, "ticket_type": prepared.ticket_type, "title": title}
    await wf.record("child_opened", SYSTEM, data)
    return True, handle


def _value(wf: Run, expression: str) -> Any:
    """A child's form value: a parent field or attribute named alone is passed as stored (money
    stays ``{amount, currency}``, a location keeps its numbers); any other expression is
    evaluated, its numbers made JSON numbers."""
    name = expression.strip()
    values = wf.values()
    if name in values or wf.spec.field(name) is not None:
        return values.get(name)  # a field without a value stays None (the child's intake says if it may)
    return _plain(wf.evaluate(expression))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def _refused(wf: Run, node: SpawnNode, index: int, child: ChildSpec, exc: Exception) -> None:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    reason = getattr(cause, "message", None) or str(cause)
    data: dict[str, Any] = {"node": node.id, "index": index, "ticket_type": child.ticket_type, "reason": reason}
    if isinstance(cause, ApplicationError):
        data["error"] = cause.type
        details = cause.details[0] if cause.details else None
        if isinstance(details, dict) and "problems" in details:
            data["problems"] = details["problems"]
    await wf.record("child_refused", SYSTEM, data)
    to = [who for who in (wf.state.created_by, "role:supervisor") if who != SYSTEM.id]
    wf.tell("child_refused", "high", to, f"{child.ticket_type}: {reason}")


async def _watch(wf: Run, node: SpawnNode, child_id: str, handle: Handle) -> None:
    """Until the child's workflow ends (shielded: cancelling this never cancels the child)."""
    try:
        result: TicketResult = await asyncio.shield(handle)
        await _finished(wf, node, child_id, result.state.status)
    except ChildWorkflowError as exc:  # terminated or timed out: nobody will close it
        await _finished(wf, node, child_id, TicketStatus.CANCELLED, str(exc.cause or exc))


async def _finished(wf: Run, node: SpawnNode, child_id: str, status: TicketStatus, reason: str | None = None) -> None:
    child = wf.state.children[child_id]
    if child.status in TERMINAL:
        return
    child.status = status
    data = {"node": node.id, "child": child_id, "status": status.value}
    await wf.record("child_finished", SYSTEM, {**data, "reason": reason} if reason else data)


async def _wait(wf: Run, node: SpawnNode, ids: list[str], watched: set[str]) -> None:
    """Until all children ended (``wait: all``) or one did (``any``); children without a handle
    in this run are polled."""

    def ended(cid: str) -> bool:
        return wf.state.children[cid].status in TERMINAL

    def done() -> bool:
        return not ids or (all(map(ended, ids)) if node.wait == "all" else any(map(ended, ids)))

    delay = POLL_FIRST
    while not done():
        unwatched = [cid for cid in ids if cid not in watched and not ended(cid)]
        if not unwatched:
            await wf.wait(done)
            return
        found: ChildStatuses = await workflow.execute_activity(
            "children.status",
            ChildIds(ids=unwatched),
            result_type=ChildStatuses,
            start_to_close_timeout=STATUS_TIMEOUT,
            retry_policy=RETRY,
            summary=f"{node.id}: where {len(unwatched)} child ticket(s) stand",
        )
        for cid in unwatched:
            status = found.statuses.get(cid)
            if status is not None and status in TERMINAL:
                await _finished(wf, node, cid, status)
        if done():
            return
        try:
            await wf.wait(done, timeout=delay, summary=f"{node.id}: ask the children again in {delay}")
        except TimeoutError:
            pass
        delay = min(delay * 2, POLL_MAX)


async def cancel_children(wf: Run) -> list[str]:
    """The parent was cancelled: its children still open whose spawn node says ``on_cancel:
    cancel`` get a signed ``cancel`` as the system (``children.cancel``); those with ``leave``
    keep running. Records what happened; returns the children cancelled. Nothing is sent (no
    command at all) when no child is to be cancelled."""
    open_ = [cid for cid, c in wf.state.children.items() if c.cancel_with_parent and c.status not in TERMINAL]
    if not open_:
        return []
    try:
        result: CancelledChildren = await workflow.execute_activity(
            "children.cancel",
            CancelChildren(parent_id=wf.state.ticket_id, ids=open_, reason=f"parent {wf.state.ticket_id} cancelled"),
            result_type=CancelledChildren,
            start_to_close_timeout=CANCEL_TIMEOUT,
            retry_policy=CANCEL_RETRY,
            summary=f"cancelled: cancel {len(open_)} child ticket(s)",
        )
    except ActivityError as exc:
        reason = getattr(exc.cause, "message", None) or str(exc.cause)
        await wf.record("children_cancel_failed", SYSTEM, {"children": open_, "reason": reason})
        return []
    for cid, status in result.ended.items():
        wf.state.children[cid].status = status
    for cid in result.cancelled:
        wf.state.children[cid].status = TicketStatus.CANCELLED
    ended = {cid: status.value for cid, status in result.ended.items()}
    await wf.record("children_cancelled", SYSTEM, {"children": result.cancelled, "ended": ended})
    return result.cancelled
