"""``gateway``: the first condition that holds picks the next node; otherwise the default."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import GatewayNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run


async def run(wf: Run, node: GatewayNode, branch: str | None) -> str:
    target = next((c.to for c in node.conditions if wf.holds(c.when)), node.default)
    matched = next((c.when for c in node.conditions if c.to == target), "default")
    if target is None:  # validation forbids a gateway without default; stay safe anyway
        raise ValueError(f"gateway {node.id}: no condition holds and there is no default")
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    wf.close_node(state, target)
    await wf.record("gateway", SYSTEM, {"node": node.id, "to": target, "because": matched})
    return target
