"""``approval``: a chain of levels (only those whose ``when`` holds), each decided by quorum.

A level's approvers are resolved when it opens (user / role members / manager of someone)
by the ``directory.resolve_people`` activity. Any rejection rejects the level and sends the
ticket to ``on_reject``; the level is approved once ``needed`` approvals are in
(any: 1, all: every approver, n_of_m: n).
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.directory import resolve_people
    from models.directory import PeopleQuery
    from models.template import ApprovalNode, ApproverRule, Quorum
    from models.ticket import SYSTEM, NodeStatus


async def _approvers(wf, rule: ApproverRule, node_id: str) -> list[str]:
    if rule.user:
        return [wf.state.created_by if rule.user == "requester" else rule.user]
    manager_of = None
    if rule.manager_of:
        manager_of = wf.state.created_by if rule.manager_of == "requester" else wf.state.fields.get(rule.manager_of)
    query = PeopleQuery(role=rule.role, manager_of=manager_of, region=wf.state.region)
    result = await workflow.execute_activity(
        resolve_people,
        query,
        start_to_close_timeout=timedelta(seconds=30),
        summary=f"{node_id}: find approvers ({'role ' + rule.role if rule.role else 'manager of ' + str(manager_of)})",
    )
    return result.ids


async def run(wf, node: ApprovalNode, branch: str | None) -> str:
    levels = [lvl for lvl in node.levels if lvl.when is None or wf.holds(lvl.when)]
    state, new = wf.open_node(node, branch, NodeStatus.OPEN, levels=[lvl.name for lvl in levels])
    if new:
        state.level = -1
    while state.level < len(levels):
        if state.level < 0 or _decided(state) == "approved":
            state.level += 1
            if state.level >= len(levels):
                break
            level = levels[state.level]
            state.approvers = await _approvers(wf, level.approvers, node.id)
            state.quorum = level.quorum.value
            needed = {Quorum.ANY: 1, Quorum.ALL: len(state.approvers)}.get(level.quorum, level.n or 1)
            state.needed = max(1, min(needed, len(state.approvers)))  # n_of_m never above who exists
            state.status = NodeStatus.OPEN
            data = {"node": node.id, "level": state.level + 1, "level_name": level.name, "approvers": state.approvers}
            if not state.approvers:
                wf.close_node(state, "rejected")
                await wf.record("approval_unstaffed", SYSTEM, data)
                return node.on_reject
            await wf.record("approval_requested", SYSTEM, data)
        await wf.wait(lambda: _decided(state) is not None)
        if _decided(state) == "rejected":
            wf.close_node(state, "rejected")
            await wf.record("approval_rejected", SYSTEM, {"node": node.id, "level": state.level + 1})
            return node.on_reject
    wf.close_node(state, "approved")
    await wf.record("approval_granted", SYSTEM, {"node": node.id, "levels": state.levels})
    return node.next


def _decided(state) -> str | None:
    votes = [v for v in state.votes if v.level == state.level]
    if any(v.decision == "reject" for v in votes):
        return "rejected"
    if sum(v.decision == "approve" for v in votes) >= state.needed:
        return "approved"
    return None
