"""Who works on a task: dispatch when it opens, the grab-pool window, re-dispatch on breach,
and taking work back from someone who left.

The scoring is ``domain/dispatch.py`` (pure), run by the ``dispatch.decide`` activity over
the roster in the database. Every decision is recorded as a ``dispatched`` / ``offered``
event whose data holds the explanation and the top candidates with their scores, so the
ticket's history (and the Temporal UI) says why someone got the work.
Deterministic workflow code: no I/O, time from ``workflow.now()``.
"""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from models.dispatch import DispatchCall, DispatchDecision, DispatchOutcome, DispatchRequest, GeoPoint, Strategy
    from models.template import TaskNode
    from models.ticket import SYSTEM, NodeState, NodeStatus
    from workflows.protocol import Run

DISPATCH_TIMEOUT = timedelta(seconds=30)
DISPATCH_RETRY = RetryPolicy(maximum_attempts=5)


def rule_of(wf: Run, node: TaskNode) -> tuple[str | None, str]:
    """The task rule's named user (``requester`` resolved), and who may take it: ``user:``,
    ``role:`` or ``group:``."""
    rule = node.assignee
    user = wf.state.created_by if rule.user == "requester" else rule.user
    if user:
        return user, f"user:{user}"
    return None, f"role:{rule.role}" if rule.role else f"group:{rule.group}"


def _location(value: Any) -> GeoPoint | None:
    if (
        isinstance(value, dict)
        and isinstance(value.get("lat"), int | float)
        and isinstance(value.get("lon"), int | float)
    ):
        return GeoPoint(lat=value["lat"], lon=value["lon"])
    return None


def request(wf: Run, node: TaskNode, state: NodeState, exclude: list[str]) -> DispatchRequest:
    """What the node asks of the roster (its rule, skills, the site, the customer's tier)."""
    d, rule, fields = node.dispatch, node.assignee, wf.state.fields
    extra: dict[str, Any] = {}
    if d is not None:
        extra = {
            "strategy": Strategy(d.strategy),
            "required_skills": d.skills,
            "location": _location(fields.get(d.location_field)) if d.location_field else None,
            "max_distance_km": d.max_distance_km,
            "customer_tier": str(fields[d.tier_field]).lower() if d.tier_field and fields.get(d.tier_field) else None,
            "top_n": d.top_n,
            **({"weights": d.weights} if d.weights is not None else {}),
        }
    return DispatchRequest(
        ticket_id=wf.state.ticket_id,
        region=wf.state.region,
        roles=[rule.role] if rule.role else [],
        teams=[rule.group] if rule.group else [],
        excluded=exclude,
        backups=list(rule.backups),
        at=workflow.now(),
        **extra,
    )


def explain(decision: DispatchDecision, node_id: str) -> dict[str, Any]:
    """The event data of a decision: the why, and the top candidates with their scores."""
    return {
        "node": node_id,
        "strategy": decision.strategy.value,
        "outcome": decision.outcome.value,
        "explanation": decision.explanation,
        "considered": decision.considered,
        "qualified": decision.qualified,
        "rejections": decision.rejections,
        "candidates": [
            {
                "id": c.id,
                "score": round(c.score, 4),
                "distance_km": c.distance_km,
                "load": c.load,
                "capacity": c.capacity,
                "contributions": {k: round(v, 4) for k, v in c.contributions.items()},
            }
            for c in decision.ranked
        ],
    }


async def decide(wf: Run, call: DispatchCall, node_id: str) -> DispatchDecision | None:
    """Run the activity; None when it keeps failing (the task stays open for claiming)."""
    label = "first available" if call.named else call.request.strategy.value
    try:
        return await workflow.execute_activity(  # type: ignore[no-any-return]
            "dispatch.decide",
            call,
            result_type=DispatchDecision,
            start_to_close_timeout=DISPATCH_TIMEOUT,
            retry_policy=DISPATCH_RETRY,
            summary=f"{node_id}: dispatch ({label})",
        )
    except ActivityError as exc:
        if isinstance(exc.cause, CancelledError):
            raise  # the ticket ended meanwhile: nothing to record
        await wf.record("dispatch_failed", SYSTEM, {"node": node_id, "reason": str(exc.cause or exc)})
        return None


async def assign_on_open(wf: Run, node: TaskNode, state: NodeState, user: str | None) -> None:
    """A new task: the named user (or the first available backup), or a dispatch decision."""
    if user and node.assignee.backups:
        call = DispatchCall(request=request(wf, node, state, []), named=[user, *node.assignee.backups])
    elif node.dispatch is not None and not user:
        key = f"{wf.state.region}:{wf.state.template_key}:{node.id}"
        call = DispatchCall(request=request(wf, node, state, []), cursor_key=key)
    else:
        return
    decision = await decide(wf, call, node.id)
    if decision is not None:
        await apply(wf, node, state, decision)


async def apply(
    wf: Run, node: TaskNode, state: NodeState, decision: DispatchDecision, action: str = "dispatched"
) -> None:
    data = explain(decision, node.id)
    if decision.outcome in (DispatchOutcome.ASSIGNED, DispatchOutcome.BACKUP) and decision.chosen_id:
        if state.assignee == decision.chosen_id:
            return  # the named assignee is available: nothing changes
        previous = state.assignee
        state.assignee, state.status = decision.chosen_id, NodeStatus.ASSIGNED
        state.delegations = {}
        await wf.record(
            action, SYSTEM, {**data, "assignee": decision.chosen_id, "previous": previous}, assignee=decision.chosen_id
        )
        wf.tell("assigned", "normal", [decision.chosen_id], decision.explanation)
    elif decision.outcome is DispatchOutcome.OFFERED and node.dispatch is not None:
        state.offers, state.fallback = list(decision.offers), decision.fallback_id
        state.assignee, state.status = None, NodeStatus.OPEN
        state.offer_until = workflow.now() + node.dispatch.offer_window
        await wf.record("offered", SYSTEM, {**data, "offers": decision.offers, "until": state.offer_until.isoformat()})
        wf.tell("offered", "high", decision.offers, f"first to claim gets it, until {state.offer_until:%H:%M} UTC")
    else:
        await wf.record(action, SYSTEM, data)
        wf.tell("unassigned", "high", ["role:supervisor"], decision.explanation)


async def offer_window(wf: Run, node: TaskNode, state: NodeState) -> None:
    """Grab pool: wait for the first claim; nobody in time → the best score gets it."""
    if state.offer_until is None or state.status != NodeStatus.OPEN:
        return
    left = (state.offer_until - workflow.now()).total_seconds()
    if left > 0:
        try:
            await wf.wait(
                lambda: state.status != NodeStatus.OPEN,
                timeout=timedelta(seconds=left),
                summary=f"{node.id}: grab pool window",
            )
        except TimeoutError:
            pass
    offers = state.offers
    fallback = state.fallback
    state.offers, state.offer_until, state.fallback = [], None, None
    if state.status == NodeStatus.OPEN and fallback:
        state.assignee, state.status = fallback, NodeStatus.ASSIGNED
        data = {
            "node": node.id,
            "assignee": fallback,
            "offered": offers,
            "explanation": "nobody claimed in time: best score",
        }
        await wf.record("offer_expired", SYSTEM, data, assignee=fallback)
        wf.tell("assigned", "normal", [fallback], "nobody claimed the offer in time")


async def redispatch(wf: Run, reason: str, only: str | None = None) -> None:
    """SLA breach: tasks nobody has started, whose node dispatches, go to someone else (only
    the clock's own node when it has one). Runs beside the walk, so people may act while the
    decision is made: anything that changed the task meanwhile wins over the decision."""
    for node_id in [only] if only is not None else list(wf.state.active):
        if node_id not in wf.state.active:
            continue
        state = wf.state.nodes[node_id]
        spec = wf.spec.node(node_id)
        if state.type != "task" or spec.dispatch is None or not spec.dispatch.reassign_on_breach:
            continue
        if state.status not in (NodeStatus.OPEN, NodeStatus.ASSIGNED) or state.offer_until is not None:
            continue
        exclude = [state.assignee] if state.assignee else []
        req = request(wf, spec, state, exclude).model_copy(update={"strategy": Strategy.BEST_SCORE})
        before = (state.status, state.assignee, state.candidates, state.offers)
        decision = await decide(wf, DispatchCall(request=req), node_id)
        if decision is None or decision.outcome not in (DispatchOutcome.ASSIGNED, DispatchOutcome.BACKUP):
            continue
        if (
            wf.state.nodes.get(node_id) is not state
            or (state.status, state.assignee, state.candidates, state.offers) != before
        ):
            continue  # somebody claimed, assigned or started it meanwhile
        decision = decision.model_copy(update={"explanation": f"{reason}: {decision.explanation}"})
        await apply(wf, spec, state, decision, action="reassigned")


async def release(wf: Run, node: TaskNode, state: NodeState, person: str, reason: str) -> None:
    """``person`` left. An offer to them is withdrawn and a delegation they made is dropped (so
    nothing is handed back to them). A task they hold goes back to whoever delegated it to
    them, else to its rule and is given again without them — the named user's first available
    backup, or a best-score dispatch — or stays open for the role, with the supervisors told.
    Whatever people did meanwhile wins over the new decision."""
    data: dict[str, Any] = {"node": node.id, "person": person, "reason": reason}
    kept = {d: by for d, by in state.delegations.items() if by != person}
    if kept != state.delegations:
        state.delegations = kept
        await wf.record("delegation_dropped", SYSTEM, data)
    if state.offer_until is not None and person in state.offers:
        state.offers = [o for o in state.offers if o != person]
        if state.fallback == person:
            state.fallback = state.offers[0] if state.offers else None
        await wf.record("offer_withdrawn", SYSTEM, {**data, "offers": state.offers})
    if state.assignee != person:
        return
    back = state.delegations.pop(person, None)
    if back is not None:
        state.assignee, state.status, state.delegations = back, NodeStatus.ASSIGNED, {}
        await wf.record("released", SYSTEM, {**data, "to": back}, assignee=back)
        wf.tell("assigned", "normal", [back], f"{node.id}: {person} left ({reason}); back to you")
        return
    user, state.candidates = rule_of(wf, node)
    state.assignee, state.status, state.delegations, state.offer_until = None, NodeStatus.OPEN, {}, None
    before = (state.status, state.assignee, state.candidates, state.offers)
    holders = [wf.state.nodes[n].assignee for n in wf.state.active if wf.state.nodes[n].assignee]
    await wf.record("released", SYSTEM, data, assignee=holders[0] if holders else None)
    named = [u for u in (user, *node.assignee.backups) if u and u != person] if user else []
    if named:
        call = DispatchCall(request=request(wf, node, state, [person]), named=named)
    elif node.dispatch is not None and not user:
        req = request(wf, node, state, [person]).model_copy(update={"strategy": Strategy.BEST_SCORE})
        call = DispatchCall(request=req)
    else:
        wf.tell("unassigned", "high", ["role:supervisor"], f"{node.id}: {person} left ({reason}); nobody took it over")
        return

    def changed() -> bool:
        return (
            wf.state.nodes.get(node.id) is not state
            or (state.status, state.assignee, state.candidates, state.offers) != before
        )

    if changed():
        return  # somebody claimed it while the release was being recorded
    decision = await decide(wf, call, node.id)
    if decision is None or changed():
        return  # the task stays open for claiming, or somebody took it meanwhile
    decision = decision.model_copy(update={"explanation": f"{person} left: {decision.explanation}"})
    await apply(wf, node, state, decision, action="reassigned")
