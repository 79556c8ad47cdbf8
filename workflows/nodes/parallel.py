"""``parallel``: run branches concurrently (each with its own tasks and assignees), join all or any."""

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import ParallelNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run

JOINED = "$joined"


async def run(wf: Run, node: ParallelNode, branch: str | None) -> str:
    state, new = wf.open_node(node, branch, NodeStatus.WAITING)
    frame = wf.state.branches.setdefault(node.id, {b.name: b.start for b in node.branches})
    if new:
        await wf.record("parallel_started", SYSTEM, {"node": node.id, "branches": [b.name for b in node.branches]})

    async def run_branch(name: str) -> None:
        try:
            await wf.walk(frame[name], stop_at=node.next, frame=node.id, branch=name)
            frame[name] = JOINED
        finally:
            wf.add_strands(-1)  # this strand ends

    names = [b.name for b in node.branches if frame[b.name] != JOINED]
    wf.add_strands(len(names))  # each branch is a running strand of the walk
    pending = [asyncio.create_task(run_branch(name)) for name in names]
    if node.join == "all" or not pending:
        await wf.idle(asyncio.gather(*pending))
    else:
        done, rest = await wf.idle(workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED))
        for task in rest:
            task.cancel()
        for node_id in list(wf.state.active):  # tasks of the branches that lost the race
            other = wf.state.nodes[node_id]
            if other.branch in frame and frame[other.branch] != JOINED:
                other.status = NodeStatus.CANCELLED
                wf.state.active.remove(node_id)
    wf.close_node(state, node.next)
    await wf.record("parallel_joined", SYSTEM, {"node": node.id, "join": node.join})
    return node.next
