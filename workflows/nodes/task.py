"""``task``: human work. Waits until the assignee completes it (claim/assign/start/complete are Updates).

Who gets it (``workflows/assignment.py``): a named user (or their first available backup),
a dispatch decision among the rule's role or group (best score, round robin, least loaded,
or a grab pool offered to the top N), or — without either — whoever of the role claims it.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.template import TaskNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows import assignment, sla
    from workflows.protocol import Run


async def run(wf: Run, node: TaskNode, branch: str | None) -> str:
    user, candidates = assignment.rule_of(wf, node)
    assignee, status = (user, NodeStatus.ASSIGNED) if user else (None, NodeStatus.OPEN)
    state, new = wf.open_node(
        node,
        branch,
        status,
        assignee=assignee,
        candidates=candidates,
        backups=node.assignee.backups,
        on_site=node.on_site is not None,
    )
    if new:
        wf.start_clocks(sla.start_node_clocks(wf, node))
        data = {"node": node.id, "candidates": candidates, **({"assignee": assignee} if assignee else {})}
        await wf.record("task_opened", SYSTEM, data, **({"assignee": assignee} if assignee else {}))
        await assignment.assign_on_open(wf, node, state, user)
        if user and state.assignee == user:
            wf.tell("assigned", "normal", [user])
    await assignment.offer_window(wf, node, state)
    await wf.wait(lambda: state.status in (NodeStatus.DONE, NodeStatus.CANCELLED))
    return node.next
