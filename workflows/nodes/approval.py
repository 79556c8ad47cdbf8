"""``approval``: a chain of levels (only those whose ``when`` holds), each decided by quorum.

A level's approvers are resolved when it opens (user / role members / manager of someone)
by the ``directory.resolve_people`` activity, and told. Any rejection rejects the level and
sends the ticket to ``on_reject``; the level is approved once ``needed`` approvals are in
(any: 1, all: every approver, n_of_m: n). An approver may delegate their vote (an Update).
A level with a ``timeout`` (business time of the region) that is still undecided then
either escalates — the approvers' managers join the level and are told — or decides by
itself (``on_timeout: approve | reject``), recorded as the system's decision. An approver
who leaves before voting hands their seat back to whoever delegated it to them, else to their
manager (``replace_approver``).
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.directory import resolve_people
    from domain.calendar import add_business_time
    from domain.expressions import names_in
    from models.directory import PeopleQuery
    from models.template import ApprovalLevel, ApprovalNode, ApproverRule, Quorum
    from models.ticket import SYSTEM, NodeState, NodeStatus
    from workflows.protocol import Run


async def _approvers(wf: Run, rule: ApproverRule, node_id: str) -> list[str]:
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


async def run(wf: Run, node: ApprovalNode, branch: str | None) -> str:
    levels = [lvl for lvl in node.levels if lvl.when is None or wf.holds(lvl.when)]
    state, new = wf.open_node(node, branch, NodeStatus.OPEN, levels=[lvl.name for lvl in levels])
    if new:
        state.level = -1
        _freeze(wf, node)
    while state.level < len(levels):
        if state.level < 0 or _decided(state) == "approved":
            state.level += 1
            if state.level >= len(levels):
                break
            level = levels[state.level]
            state.approvers = await _approvers(wf, level.approvers, node.id)
            state.delegations = {}  # a vote handed on at one level is not carried to the next
            state.quorum = level.quorum.value
            needed = {Quorum.ANY: 1, Quorum.ALL: len(state.approvers)}.get(level.quorum, level.n or 1)
            state.needed = max(1, min(needed, len(state.approvers)))  # n_of_m never above who exists
            state.status = NodeStatus.OPEN
            data = {"node": node.id, "level": state.level + 1, "level_name": level.name, "approvers": state.approvers}
            if not state.approvers:
                _unfreeze(wf, node)
                wf.close_node(state, "rejected")
                await wf.record("approval_unstaffed", SYSTEM, data)
                return node.on_reject
            state.due = None
            if level.timeout is not None:
                state.due = add_business_time(wf.calendar, workflow.now(), level.timeout)
            await wf.record("approval_requested", SYSTEM, data)
            wf.tell("approval_needed", "normal", state.approvers, f"{node.name or node.id}: level {level.name}")
        await _await_decision(wf, node, state, levels[state.level])
        if _decided(state) == "rejected":
            _unfreeze(wf, node)
            wf.close_node(state, "rejected")
            await wf.record("approval_rejected", SYSTEM, {"node": node.id, "level": state.level + 1})
            return node.on_reject
    wf.close_node(state, "approved")
    await wf.record("approval_granted", SYSTEM, {"node": node.id, "levels": state.levels})
    return node.next


async def _await_decision(wf: Run, node: ApprovalNode, state: NodeState, level: ApprovalLevel) -> None:
    due = state.due
    if due is not None:
        left = (due - workflow.now()).total_seconds()
        try:
            label = f"{node.id}: level {level.name} deadline ({level.on_timeout})"
            await wf.wait(
                lambda: _decided(state) is not None, timeout=timedelta(seconds=max(left, 0.001)), summary=label
            )
            return
        except TimeoutError:
            pass
        state.due = None
        if _decided(state) is None:
            await _on_timeout(wf, node, state, level)
    await wf.wait(lambda: _decided(state) is not None)


async def _on_timeout(wf: Run, node: ApprovalNode, state: NodeState, level: ApprovalLevel) -> None:
    data = {"node": node.id, "level": state.level + 1, "level_name": level.name, "timeout": str(level.timeout)}
    if level.on_timeout in ("approve", "reject"):
        state.decided[state.level] = "approved" if level.on_timeout == "approve" else "rejected"
        await wf.record("approval_timed_out", SYSTEM, {**data, "decision": state.decided[state.level]})
        return
    managers: list[str] = []
    for approver in state.approvers:
        found = await workflow.execute_activity(
            resolve_people,
            PeopleQuery(manager_of=approver),
            start_to_close_timeout=timedelta(seconds=30),
            summary=f"{node.id}: escalate — manager of {approver}",
        )
        managers += [m for m in found.ids if m not in state.approvers and m not in managers]
    state.approvers = state.approvers + managers
    await wf.record("approval_escalated", SYSTEM, {**data, "added": managers})
    # Nobody above the approvers: the region's supervisors hear of it (they can chase it up).
    wf.tell(
        "approval_needed",
        "high",
        managers or ["role:supervisor"],
        f"{node.name or node.id}: level {level.name} is overdue ({level.timeout})",
    )


def _decided(state: NodeState) -> str | None:
    auto = state.decided.get(state.level)
    if auto is not None:
        return auto
    votes = [v for v in state.votes if v.level == state.level]
    if any(v.decision == "reject" for v in votes):
        return "rejected"
    if sum(v.decision == "approve" for v in votes) >= state.needed:
        return "approved"
    return None


async def replace_approver(wf: Run, node: ApprovalNode, state: NodeState, person: str, reason: str) -> None:
    """``person`` left. A vote they delegated stays with the delegate (it is never handed back to
    them). A seat of the current level they still owe goes back to whoever delegated it to them,
    else to their manager (the first active one up), else to the region's supervisors; with
    nobody at all, the level is rejected (the template's ``on_reject``). Nothing changes if the
    level was decided or moved on meanwhile."""
    kept = {d: by for d, by in state.delegations.items() if by != person}
    if kept != state.delegations:
        state.delegations = kept
        await wf.record("delegation_dropped", SYSTEM, {"node": node.id, "person": person, "reason": reason})
    level = state.level
    if person not in state.approvers or any(v.actor_id == person and v.level == level for v in state.votes):
        return
    if person in state.delegations:
        heirs = [state.delegations.pop(person)]
    else:
        heirs = await _find(wf, node, PeopleQuery(manager_of=person), f"{person} left — find their manager")
        if not heirs:
            query = PeopleQuery(role="supervisor", region=wf.state.region)
            heirs = await _find(wf, node, query, f"{person} left — find the region's supervisors")
    if wf.state.nodes.get(node.id) is not state or node.id not in wf.state.active or state.level != level:
        return
    if _decided(state) is not None or person not in state.approvers:
        return  # decided, or changed, while we looked
    heirs = [h for h in heirs if h not in state.approvers and h not in (wf.state.created_by, person)]
    state.approvers = [a for seat in state.approvers for a in (heirs if seat == person else [seat])]
    state.needed = max(1, min(state.needed, len(state.approvers)))
    data = {"node": node.id, "level": level + 1, "person": person, "reason": reason, "added": heirs}
    if not state.approvers:
        state.decided[level] = "rejected"  # nobody can decide: the walk takes on_reject
        await wf.record("approval_unstaffed", SYSTEM, data)
        return
    await wf.record("approver_replaced", SYSTEM, data)
    if heirs:
        wf.tell("approval_needed", "normal", heirs, f"{node.name or node.id}: {person} left ({reason})")


async def _find(wf: Run, node: ApprovalNode, query: PeopleQuery, summary: str) -> list[str]:
    found = await workflow.execute_activity(
        resolve_people, query, start_to_close_timeout=timedelta(seconds=30), summary=f"{node.id}: {summary}"
    )
    return found.ids


def decided_fields(wf: Run, node: ApprovalNode) -> list[str]:
    """The form fields this approval decides on: declared, else those its levels' conditions read."""
    if node.decides is not None:
        return list(node.decides)
    names = [n for lvl in node.levels if lvl.when for n in names_in(lvl.when)]
    return [n for n in dict.fromkeys(names) if wf.spec.field(n) is not None]


def _freeze(wf: Run, node: ApprovalNode) -> None:
    """From when the approval opens, what it decides on cannot change (until it rejects)."""
    fields = decided_fields(wf, node)
    if fields:
        wf.state.frozen = {**wf.state.frozen, **{f: node.id for f in fields}}


def _unfreeze(wf: Run, node: ApprovalNode) -> None:
    """A rejection sends the request back for revision: every approval's decision is open again
    (each one re-decides, and freezes again, when the walk reaches it anew)."""
    wf.state.frozen = {}
