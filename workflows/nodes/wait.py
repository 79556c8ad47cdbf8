"""``wait``: a durable timer, or until an event (signal) arrives — at most ``duration``."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import WaitNode
    from models.ticket import SYSTEM, NodeStatus


async def run(wf, node: WaitNode, branch: str | None) -> str:
    state, new = wf.open_node(node, branch, NodeStatus.WAITING)
    if new:
        await wf.record("waiting", SYSTEM, {"node": node.id, "signal": node.signal, "duration": str(node.duration)})
    seen = len(wf.signals)
    outcome = "elapsed"
    if node.signal:
        arrived = lambda: any(s.name == node.signal for s in wf.signals[seen:])  # noqa: E731
        try:
            await wf.wait(arrived, timeout=node.duration, summary=f"{node.id}: wait for {node.signal}")
            outcome = node.signal
        except TimeoutError:
            outcome = "timeout"
    elif node.duration:
        await wf.idle(workflow.sleep(node.duration, summary=f"{node.id}: wait {node.duration}"))
    wf.close_node(state, outcome)
    await wf.record("wait_over", SYSTEM, {"node": node.id, "outcome": outcome})
    return node.next
