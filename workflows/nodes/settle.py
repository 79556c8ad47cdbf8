"""``settle``: price the ticket and persist its statement (see issue #5)."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import SettleNode
    from models.ticket import SYSTEM, NodeStatus


async def run(wf, node: SettleNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    wf.close_node(state, "not_configured")
    await wf.record("settle", SYSTEM, {"node": node.id, "outcome": "settlement is not configured yet"})
    return node.next
