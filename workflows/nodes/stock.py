"""``settle``, ``reserve_parts``, ``consume_parts``: money and stock steps (see issue #5)."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.ticket import SYSTEM, NodeStatus


async def _pass_through(wf, node, branch: str | None, what: str) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    wf.close_node(state, "not_configured")
    await wf.record(node.type, SYSTEM, {"node": node.id, "outcome": f"{what} is not configured yet"})
    return node.next


async def settle(wf, node, branch: str | None) -> str:
    return await _pass_through(wf, node, branch, "settlement")


async def reserve_parts(wf, node, branch: str | None) -> str:
    return await _pass_through(wf, node, branch, "inventory")


async def consume_parts(wf, node, branch: str | None) -> str:
    return await _pass_through(wf, node, branch, "inventory")
