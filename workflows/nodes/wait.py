"""``wait``: a durable timer, or until an event (signal) arrives — at most ``duration``.

An event that came before the wait opened (while no wait was waiting for it) is kept in
``state.unclaimed_events``; the first wait for it takes it and moves on at once, if it came
within the wait's ``early_window`` (older ones of that name are dropped)."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import WaitNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run


async def run(wf: Run, node: WaitNode, branch: str | None) -> str:
    state, new = wf.open_node(node, branch, NodeStatus.WAITING)
    if new:
        state.signals_before = len(wf.signals)  # events from now on count
    seen = state.signals_before
    if new:
        await wf.record("waiting", SYSTEM, {"node": node.id, "signal": node.signal, "duration": str(node.duration)})
    # Resumed after continue-as-new or reopen: only the time left counts.
    left = None
    if node.duration is not None:
        left = max(timedelta(0), state.started_at + node.duration - workflow.now())
    outcome = "elapsed"
    if node.signal and _take_early(wf, node):
        outcome = node.signal
    elif node.signal:
        arrived = lambda: any(s.name == node.signal for s in wf.signals[seen:])  # noqa: E731
        try:
            await wf.wait(arrived, timeout=left, summary=f"{node.id}: wait for {node.signal}")
            outcome = node.signal
        except TimeoutError:
            outcome = "timeout"
    elif left is not None:
        await wf.idle(workflow.sleep(left, summary=f"{node.id}: wait {node.duration}"))
    wf.close_node(state, outcome)
    await wf.record("wait_over", SYSTEM, {"node": node.id, "outcome": outcome})
    return node.next


def _take_early(wf: Run, node: WaitNode) -> bool:
    """Take the oldest kept event for this wait that came within its window; drop older ones."""
    oldest = workflow.now() - node.early_window
    fresh = [e for e in wf.state.unclaimed_events if e.name != node.signal or e.at >= oldest]
    mine = next((e for e in fresh if e.name == node.signal), None)
    wf.state.unclaimed_events = [e for e in fresh if e is not mine]
    return mine is not None
