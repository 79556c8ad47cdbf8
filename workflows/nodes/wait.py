"""``wait``: a durable timer, or until an event (signal) arrives — at most ``duration``.

An event that came before the wait opened (while no wait was waiting for it) is kept in
``state.unclaimed_events``; the first wait for it takes it and moves on at once."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import WaitNode
    from models.ticket import SYSTEM, NodeStatus


async def run(wf, node: WaitNode, branch: str | None) -> str:
    state, new = wf.open_node(node, branch, NodeStatus.WAITING)
    if new:
        state.result = {"signals_before": len(wf.signals)}  # events from now on count
    seen = state.result.get("signals_before", 0)
    if new:
        await wf.record("waiting", SYSTEM, {"node": node.id, "signal": node.signal, "duration": str(node.duration)})
    # Resumed after continue-as-new or reopen: only the time left counts.
    left = None
    if node.duration is not None:
        left = max(timedelta(0), state.started_at + node.duration - workflow.now())
    outcome = "elapsed"
    if node.signal and node.signal in wf.state.unclaimed_events:
        wf.state.unclaimed_events.remove(node.signal)
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
