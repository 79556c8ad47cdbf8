"""Allowed actions, who may take them, and the derived status — pure functions on a ticket state."""

from datetime import UTC, datetime

import pytest

from domain.lifecycle import Refusal, allowed_actions, check_actor, derive_status, target_node
from models.ticket import Action, ActorRef, NodeState, NodeStatus, Priority, TicketState, TicketStatus

T0 = datetime(2026, 11, 24, 9, tzinfo=UTC)
A, S = Action, TicketStatus
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
OTHER_ENG = ActorRef(id="eng-zhao", roles=["engineer"], regions=["east"])
AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
CUSTOMER = ActorRef(id="someone", roles=["channel"], regions=["*"])


def state(*nodes: NodeState, status: S = S.NEW) -> TicketState:
    return TicketState(
        ticket_id="T1",
        ticket_type="general",
        region="east",
        priority=Priority.NORMAL,
        title="t",
        created_by="agent-wang",
        created_at=T0,
        updated_at=T0,
        status=status,
        active=[n.id for n in nodes],
        nodes={n.id: n for n in nodes},
    )


def task(node_id="work", status=NodeStatus.OPEN, assignee=None, candidates="role:engineer", **extra) -> NodeState:
    return NodeState(
        id=node_id, type="task", status=status, assignee=assignee, candidates=candidates, started_at=T0, **extra
    )


def test_status_follows_the_active_task():
    assert derive_status(state(task()), reached_end=False) == S.NEW
    assert derive_status(state(task(status=NodeStatus.ASSIGNED, assignee="eng-li")), False) == S.ASSIGNED
    assert derive_status(state(task(status=NodeStatus.IN_PROGRESS, assignee="eng-li")), False) == S.IN_PROGRESS
    assert derive_status(state(), reached_end=True) == S.RESOLVED
    assert derive_status(state(status=S.CANCELLED), reached_end=True) == S.CANCELLED


def test_allowed_actions_by_status_and_node():
    assert allowed_actions(state(task())) == [A.CLAIM, A.ASSIGN, A.CANCEL, A.COMMENT, A.CHANGE_PRIORITY]
    assigned = state(task(status=NodeStatus.ASSIGNED, assignee="eng-li"), status=S.ASSIGNED)
    held = [A.DELEGATE, A.REQUEST_INFO, A.CHANGE_PRIORITY]
    assert allowed_actions(assigned) == [A.ASSIGN, A.START, A.CANCEL, A.COMMENT, *held]
    working = state(task(status=NodeStatus.IN_PROGRESS, assignee="eng-li"), status=S.IN_PROGRESS)
    assert allowed_actions(working) == [A.ASSIGN, A.COMPLETE, A.RESOLVE, A.CANCEL, A.COMMENT, *held]
    delegated = task(status=NodeStatus.IN_PROGRESS, assignee="eng-zhao", delegations={"eng-zhao": "eng-li"})
    assert A.RETURN in allowed_actions(state(delegated, status=S.IN_PROGRESS))
    asked = task(status=NodeStatus.IN_PROGRESS, assignee="eng-li", awaiting_info="which floor?")
    assert A.REQUEST_INFO not in allowed_actions(state(asked, status=S.IN_PROGRESS))
    assert allowed_actions(state(status=S.RESOLVED)) == [A.REOPEN, A.CLOSE, A.COMMENT]
    assert allowed_actions(state(status=S.CLOSED)) == []


def test_illegal_action_is_an_invalid_transition_naming_what_is_allowed():
    with pytest.raises(Refusal) as err:
        target_node(state(task()), A.RESOLVE, None)
    assert err.value.kind == "invalid_transition"
    assert err.value.details["allowed_actions"] == ["claim", "assign", "cancel", "comment", "change_priority"]


def test_two_open_tasks_need_a_node_name():
    s = state(task("restock", candidates="role:warehouse"), task("pickup", candidates="role:logistics"))
    with pytest.raises(Refusal) as err:
        target_node(s, A.CLAIM, None)
    assert err.value.kind == "ambiguous" and err.value.details["nodes"] == ["restock", "pickup"]
    assert target_node(s, A.CLAIM, "pickup").id == "pickup"


def test_who_may_act():
    open_task = task()
    check_actor(state(open_task), A.CLAIM, ENG, open_task)  # has the role
    with pytest.raises(Refusal, match="may not claim"):
        check_actor(state(open_task), A.CLAIM, AGENT, open_task)
    mine = task(status=NodeStatus.IN_PROGRESS, assignee="eng-li")
    check_actor(state(mine), A.RESOLVE, ENG, mine)
    with pytest.raises(Refusal) as err:
        check_actor(state(mine), A.RESOLVE, OTHER_ENG, mine)
    assert err.value.kind == "not_allowed"
    check_actor(state(mine), A.ASSIGN, ENG, mine)  # the holder may delegate
    check_actor(state(mine), A.ASSIGN, AGENT, mine)  # coordinators may reassign
    with pytest.raises(Refusal):
        check_actor(state(mine), A.ASSIGN, OTHER_ENG, mine)
    with pytest.raises(Refusal):
        check_actor(state(status=S.RESOLVED), A.CLOSE, CUSTOMER, None)


def test_grab_pool_offer_is_claimable_by_the_offerees_only():
    offered = task(candidates="role:engineer", offers=["eng-li", "eng-wu"])
    check_actor(state(offered), A.CLAIM, ENG, offered)
    with pytest.raises(Refusal, match="may not claim"):
        check_actor(state(offered), A.CLAIM, OTHER_ENG, offered)  # an engineer, but not offered


def test_delegate_and_return_a_task():
    mine = task(status=NodeStatus.IN_PROGRESS, assignee="eng-li")
    check_actor(state(mine, status=S.IN_PROGRESS), A.DELEGATE, ENG, mine)
    with pytest.raises(Refusal, match="may not delegate"):
        check_actor(state(mine, status=S.IN_PROGRESS), A.DELEGATE, OTHER_ENG, mine)
    lent = task(status=NodeStatus.IN_PROGRESS, assignee="eng-zhao", delegations={"eng-zhao": "eng-li"})
    check_actor(state(lent, status=S.IN_PROGRESS), A.RETURN, OTHER_ENG, lent)  # the delegate gives it back
    with pytest.raises(Refusal, match="may not return"):
        check_actor(state(lent, status=S.IN_PROGRESS), A.RETURN, ENG, lent)  # not holding it now
    check_actor(state(lent, status=S.IN_PROGRESS), A.RETURN, AGENT, lent)  # a coordinator may


def test_only_the_assignee_asks_the_customer():
    mine = task(status=NodeStatus.IN_PROGRESS, assignee="eng-li")
    check_actor(state(mine, status=S.IN_PROGRESS), A.REQUEST_INFO, ENG, mine)
    with pytest.raises(Refusal, match="may not request_info"):
        check_actor(state(mine, status=S.IN_PROGRESS), A.REQUEST_INFO, AGENT, mine)


def test_an_approver_delegates_their_own_vote_only():
    level = NodeState(id="ok", type="approval", status=NodeStatus.OPEN, approvers=["mgr-sun"], started_at=T0)
    mgr = ActorRef(id="mgr-sun", roles=["manager"], regions=["east"])
    check_actor(state(level), A.DELEGATE, mgr, level)
    with pytest.raises(Refusal, match="may not delegate"):
        check_actor(state(level), A.DELEGATE, AGENT, level)


def test_a_state_carried_from_before_early_events_had_times_still_loads():
    """Runs that continued as new before ``unclaimed_events`` kept arrival times carried bare
    names; they load as having come at the state's last change (so the wait window applies)."""
    carried = state().model_dump(mode="json") | {"unclaimed_events": ["customer_replied"]}
    loaded = TicketState.model_validate(carried)
    assert [(e.name, e.at) for e in loaded.unclaimed_events] == [("customer_replied", T0)]
