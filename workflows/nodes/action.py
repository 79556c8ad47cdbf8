"""``action``: call any registered activity by name; inputs are expressions, outputs become fields."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.template import ActionNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run

# Catalog activities heartbeat every few seconds while they run (activities/catalog.py): a dead
# worker's attempt is retried after this, not after the node's whole timeout.
HEARTBEAT_TIMEOUT = timedelta(seconds=15)


async def run(wf: Run, node: ActionNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    args = {name: wf.evaluate(expr) for name, expr in node.inputs.items()}
    result = await workflow.execute_activity(
        node.activity,
        args,
        start_to_close_timeout=node.timeout,
        heartbeat_timeout=min(HEARTBEAT_TIMEOUT, node.timeout),
        retry_policy=RetryPolicy(maximum_attempts=10),
        activity_id=f"{node.id}-{len(wf.state.path)}",
        summary=f"{node.id}: {node.activity}",
    )
    result = result if isinstance(result, dict) else {}
    written = {field: result.get(out) for field, out in node.outputs.items()}
    wf.state.fields = {**wf.state.fields, **written}
    state.result = result
    wf.close_node(state, "done")
    await wf.record("action", SYSTEM, {"node": node.id, "activity": node.activity, "fields": written})
    return node.next
