"""The ticket lifecycle: which actions are allowed now, who may take them, and the status.

The ticket's status is derived from its process state:

    new ──claim/assign──▶ assigned ──start──▶ in_progress ──(last task done)──▶ resolved ──close──▶ closed
                                                  ▲                                 │
                                                  └──────────── reopen ─────────────┘
    any open status ──cancel──▶ cancelled

``new``/``assigned``/``in_progress`` follow the active task(s); a ticket past its first task
that waits on an approval or an unclaimed later task is ``in_progress``. ``comment`` is
allowed in every status but the final two. Pure functions: the workflow's validators and
the API both use them.
"""

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from models.template import EventSpec
from models.ticket import Action, ActorRef, NodeState, NodeStatus, TicketState, TicketStatus

S, A = TicketStatus, Action
TERMINAL = frozenset({S.CLOSED, S.CANCELLED})
OPEN_TASK = frozenset({NodeStatus.OPEN, NodeStatus.ASSIGNED, NodeStatus.IN_PROGRESS})
# Roles that may assign, cancel, reopen and close any ticket of their regions.
COORDINATORS = frozenset({"agent", "supervisor", "manager", "director", "admin"})
OVERRIDE = frozenset({"admin"})  # may act on any task


class RefusalType(StrEnum):
    """The ``ApplicationError.type`` of every refusal a ticket answers an Update with, shared by
    the workflow and the API (``api/services/tickets.py`` maps each to an HTTP status)."""

    INVALID_TRANSITION = "InvalidTransition"  # not in this status / at this node (409)
    NOT_ALLOWED = "NotAllowed"  # not this actor (403)
    AMBIGUOUS = "NodeAmbiguous"  # several nodes fit: name one (409)
    ALREADY_VOTED = "AlreadyVoted"  # (409)
    FORM = "FormIncomplete"  # required fields missing, or not editable here (422)
    FROZEN = "FieldFrozen"  # an approval decides on the field (409)
    EVENT = "EventRefused"  # an event or field the template does not declare (422)
    MOVING = "TicketMoving"  # the run is handing over to the next: send it again (the API does)
    UNSIGNED = "RequestNotSigned"  # not signed by the API (or a key the worker lacks): 503 from the API
    EXPIRED = "RequestExpired"  # reached the ticket after its expiry: never applied (504)
    KEY_REUSED = "IdempotencyKeyReused"  # the request id was used for another request (422)
    TOO_FAR = "TooFarFromSite"  # a check-in farther from the site than the template allows (422)


# Refusal.kind → its type.
REFUSAL_TYPES = {
    "invalid_transition": RefusalType.INVALID_TRANSITION,
    "not_allowed": RefusalType.NOT_ALLOWED,
    "ambiguous": RefusalType.AMBIGUOUS,
    "already_voted": RefusalType.ALREADY_VOTED,
    "form": RefusalType.FORM,
    "frozen": RefusalType.FROZEN,
    "event": RefusalType.EVENT,
    "too_far": RefusalType.TOO_FAR,
}


class Refusal(Exception):
    """Why an action is refused: ``kind`` is invalid_transition | not_allowed | ambiguous | form |
    frozen | event (an event this ticket does not take, or a field it may not set)."""

    def __init__(self, kind: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details


def derive_status(state: TicketState, reached_end: bool) -> TicketStatus:
    if state.status in TERMINAL:
        return state.status
    if reached_end:
        return S.RESOLVED
    tasks = [state.nodes[n] for n in state.active if state.nodes[n].type == "task"]
    if any(t.status == NodeStatus.IN_PROGRESS for t in tasks):
        return S.IN_PROGRESS
    if any(t.status == NodeStatus.ASSIGNED for t in tasks):
        return S.ASSIGNED
    started = any(
        n.status == NodeStatus.DONE or (n.type == "approval" and n.votes)
        for n in state.nodes.values()
        if n.type in ("task", "approval")
    )
    return S.IN_PROGRESS if started else S.NEW


def current_assignee(state: TicketState) -> str | None:
    """Who holds the open work: the first active task's holder (None while nobody does, e.g. an
    open task or an approval). The workflow keeps the last holder once nothing is active."""
    for node_id in state.active:
        node = state.nodes[node_id]
        if node.type == "task" and node.assignee and node.status in HELD:
            return node.assignee
    return None


def _active(state: TicketState, node_type: str) -> list[NodeState]:
    return [state.nodes[n] for n in state.active if state.nodes[n].type == node_type]


HELD = frozenset({NodeStatus.ASSIGNED, NodeStatus.IN_PROGRESS})


def _node_ok(action: Action, node: NodeState) -> bool:
    if node.type == "task":
        return {
            A.CLAIM: node.status == NodeStatus.OPEN,
            A.ASSIGN: node.status in OPEN_TASK,
            A.START: node.status == NodeStatus.ASSIGNED,
            A.COMPLETE: node.status == NodeStatus.IN_PROGRESS,
            A.RESOLVE: node.status == NodeStatus.IN_PROGRESS,
            A.DELEGATE: node.status in HELD,
            A.RETURN: node.status in HELD and bool(node.delegations),
            A.REQUEST_INFO: node.status in HELD and node.awaiting_info is None,
            A.CHECK_IN: node.on_site and node.status in HELD and not _on_site_now(node),
            A.CHECK_OUT: node.on_site and _on_site_now(node),
        }.get(action, False)
    if node.type == "approval":
        if node.status != NodeStatus.OPEN:
            return False
        return action in (A.APPROVE, A.REJECT, A.DELEGATE) or (action == A.RETURN and bool(node.delegations))
    return False


def _on_site_now(node: NodeState) -> bool:
    """Checked in and not out yet."""
    return bool(node.visits) and node.visits[-1].checked_out_at is None


NODE_ACTIONS = (
    A.CHECK_IN,
    A.CHECK_OUT,
    A.CLAIM,
    A.ASSIGN,
    A.START,
    A.COMPLETE,
    A.RESOLVE,
    A.APPROVE,
    A.REJECT,
    A.DELEGATE,
    A.RETURN,
    A.REQUEST_INFO,
)


def allowed_actions(state: TicketState) -> list[Action]:
    """Actions the ticket's status and active nodes allow (not yet checking who asks)."""
    if state.status in TERMINAL:
        return []
    if state.status == S.RESOLVED:
        return [A.REOPEN, A.CLOSE, A.COMMENT]
    nodes = [state.nodes[n] for n in state.active]
    out = [a for a in NODE_ACTIONS if any(_node_ok(a, n) for n in nodes)]
    return [a for a in Action if a in out or a in (A.CANCEL, A.COMMENT, A.CHANGE_PRIORITY)]


def target_node(state: TicketState, action: Action, node_id: str | None, actor: ActorRef | None = None) -> NodeState:
    """The active node an action applies to; raises Refusal when none or several fit.

    With ``actor``, nodes that actor may not act on are left out first, so an engineer
    claiming in a parallel step gets the one task of their role without naming it.
    """
    if action not in allowed_actions(state):
        raise Refusal(
            "invalid_transition",
            f"cannot {action.value} a ticket that is {state.status.value}",
            status=state.status.value,
            allowed_actions=[a.value for a in allowed_actions(state)],
        )
    fits = [state.nodes[n] for n in state.active if _node_ok(action, state.nodes[n])]
    if node_id is not None:
        fits = [n for n in fits if n.id == node_id]
        if not fits:
            raise Refusal(
                "invalid_transition",
                f"node {node_id!r} is not active or does not take {action.value}",
                status=state.status.value,
                allowed_actions=[a.value for a in allowed_actions(state)],
            )
    if len(fits) > 1 and actor is not None:
        mine = [n for n in fits if _may(state, action, actor, n)]
        fits = mine or fits
    if len(fits) > 1:
        raise Refusal("ambiguous", f"several active nodes take {action.value}: name one", nodes=[n.id for n in fits])
    return fits[0]


def _has(actor: ActorRef, roles: Iterable[str]) -> bool:
    return bool(set(actor.roles) & set(roles))


def may_claim(actor: ActorRef, node: NodeState) -> bool:
    if _has(actor, OVERRIDE | {"supervisor"}):
        return True
    if node.offers:  # a grab pool: only the offerees, while it lasts
        return actor.id in node.offers
    kind, _, value = (node.candidates or "").partition(":")
    return (
        (kind == "user" and actor.id == value)
        or (kind == "role" and value in actor.roles)
        or (kind == "group" and value in actor.groups)
    )


def _may(state: TicketState, action: Action, actor: ActorRef, node: NodeState) -> bool:
    try:
        check_actor(state, action, actor, node)
    except Refusal:
        return False
    return True


def check_handover(state: TicketState, node: NodeState, action: Action, actor: ActorRef, to: str | None = None) -> None:
    """A vote handed on (``delegate``) or back (``return``) stays one vote: never to someone who
    already decides on this level, never to the requester, never back once the delegate voted."""
    if node.type != "approval":
        return
    voted = {v.actor_id for v in node.votes if v.level == node.level}
    if action == A.DELEGATE and to is not None:
        if to in node.approvers or to in voted:
            raise Refusal("already_voted", f"{to} already decides on level {node.level + 1}")
        if to == state.created_by:
            raise Refusal("not_allowed", f"{to} made this request and may not approve it")
    elif action == A.RETURN:
        handed = [actor.id] if actor.id in node.delegations else list(node.delegations)
        if any(d in voted for d in handed):
            raise Refusal("already_voted", "the delegate has voted on this level: the vote cannot be returned")


def check_info_request(node: NodeState, limit: int | None) -> None:
    """A task may ask the customer at most ``limit`` times (the template's ``max_info_requests``)."""
    if limit is not None and node.info_requests >= limit:
        raise Refusal(
            "invalid_transition",
            f"{node.id} has asked the customer {node.info_requests} times, the template's limit",
            limit=limit,
        )


def check_actor(state: TicketState, action: Action, actor: ActorRef, node: NodeState | None) -> None:
    """Raise Refusal('not_allowed') when ``actor`` may not take ``action`` (the API answers 403)."""
    requester = actor.id == state.created_by
    coordinator = _has(actor, COORDINATORS)
    ok = True
    if action == A.CLAIM and node is not None:
        ok = may_claim(actor, node)
    elif action == A.ASSIGN and node is not None:
        ok = coordinator or node.assignee == actor.id  # the holder may delegate
    elif action in (A.START, A.COMPLETE, A.RESOLVE) and node is not None:
        ok = node.assignee == actor.id or _has(actor, OVERRIDE)
    elif action in (A.APPROVE, A.REJECT) and node is not None:
        ok = actor.id in node.approvers or _has(actor, OVERRIDE)
        if ok and any(v.actor_id == actor.id and v.level == node.level for v in node.votes):
            raise Refusal("already_voted", f"{actor.id} has already decided on level {node.level + 1}")
    elif action == A.DELEGATE and node is not None:
        if node.type == "approval":
            ok = actor.id in node.approvers  # a vote is personal: only its holder hands it on
            if ok and any(v.actor_id == actor.id and v.level == node.level for v in node.votes):
                raise Refusal("already_voted", f"{actor.id} has already decided on level {node.level + 1}")
        else:
            ok = node.assignee == actor.id or coordinator
    elif action == A.RETURN and node is not None:
        holder = actor.id in node.approvers if node.type == "approval" else node.assignee == actor.id
        ok = (holder and actor.id in node.delegations) or coordinator
    elif action == A.REQUEST_INFO and node is not None:
        ok = node.assignee == actor.id or _has(actor, OVERRIDE)
    elif action in (A.CHECK_IN, A.CHECK_OUT) and node is not None:
        ok = node.assignee == actor.id  # only whoever holds the task is on site: nobody checks in for them
    elif action == A.CHANGE_PRIORITY:
        ok = coordinator
    elif action in (A.REOPEN, A.CLOSE, A.CANCEL):
        ok = coordinator or requester
    if not ok:
        raise Refusal(
            "not_allowed", f"{actor.id} may not {action.value} this ticket" + (f" at {node.id}" if node else "")
        )


def allowed_for(state: TicketState, actor: ActorRef) -> list[Action]:
    """The actions ``actor`` may take now: the ticket allows them and some node lets them."""
    out = []
    for action in allowed_actions(state):
        if action in NODE_ACTIONS:
            nodes = [state.nodes[n] for n in state.active if _node_ok(action, state.nodes[n])]
            if any(_may(state, action, actor, n) for n in nodes):
                out.append(action)
        else:
            try:
                check_actor(state, action, actor, None)
            except Refusal:
                continue
            out.append(action)
    return out


def check_region(state: TicketState, actor: ActorRef) -> None:
    if "*" not in actor.regions and state.region not in actor.regions:
        raise Refusal("not_allowed", f"{actor.id} does not work in region {state.region}")


def worked_on(state: TicketState, actor_id: str) -> bool:
    """``actor_id`` held a task of this ticket (now or before)."""
    return any(n.type == "task" and n.assignee == actor_id for n in state.nodes.values())


def may_send(state: TicketState, event: EventSpec, actor: ActorRef) -> bool:
    """One of the event's declared senders: requester, channel, assignee or role:<name>. The
    requester counts only while they did none of the ticket's work: whoever did the work never
    speaks for the customer about it (an engineer who filed a ticket cannot confirm its repair)."""
    for sender in event.senders:
        kind, _, value = sender.partition(":")
        if (
            (kind == "requester" and actor.id == state.created_by and not worked_on(state, actor.id))
            or (kind == "channel" and "channel" in actor.roles)
            or (kind == "assignee" and any(state.nodes[n].assignee == actor.id for n in state.active))
            or (kind == "role" and value in actor.roles)
        ):
            return True
    return False


def check_event(
    state: TicketState, event: EventSpec | None, name: str, actor: ActorRef, fields: Mapping[str, Any]
) -> None:
    """Refusal unless the template declares the event, ``actor`` is one of its senders and it
    sets only the fields it declares (and none an approval froze)."""
    if event is None:
        raise Refusal("event", f"{state.ticket_type} tickets take no event {name!r}", field="name")
    if not may_send(state, event, actor):
        raise Refusal("not_allowed", f"{actor.id} may not send {name} (senders: {', '.join(event.senders)})")
    extra = sorted(set(fields) - set(event.fields))
    if extra:
        raise Refusal("event", f"{name} may not set {', '.join(extra)}", field=f"fields.{extra[0]}", fields=extra)
    check_frozen(state, fields)


def check_frozen(state: TicketState, fields: Mapping[str, Any]) -> None:
    """Refusal('frozen') when a field an approval decides on would change (the same value
    again is no change)."""
    frozen = sorted(f for f, v in fields.items() if f in state.frozen and state.fields.get(f) != v)
    if frozen:
        by = ", ".join(sorted({state.frozen[f] for f in frozen}))
        raise Refusal(
            "frozen",
            f"{', '.join(frozen)} {'is' if len(frozen) == 1 else 'are'} decided by the approval {by}: "
            "it cannot change now",
            fields=frozen,
        )
