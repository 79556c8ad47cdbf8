"""Every preset process template (templates/*.yaml), end to end through each of its branches.

TicketWorkflow runs on the time-skipping server with the real activities (projection,
directory look-ups, purchasing) against the ``db`` fixture's database, whose demo actors
are mirrored below as ActorRefs. Timers are skipped with ``tsenv.sleep``.
"""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import ACTIVITIES
from models import demo
from models.db import Database
from models.tables import PurchaseRequest, Ticket, TicketEventRow
from models.template import ApprovalLevel, ApproverRule, Quorum, TemplateVersion
from models.ticket import (
    ActorRef,
    ApproveInput,
    AssignInput,
    CancelInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    CompleteInput,
    EventInput,
    NodeStatus,
    Priority,
    RejectInput,
    ResolveInput,
    StartInput,
    TicketInput,
    TicketState,
    TicketStatus,
)
from store.inventory import receive
from tests.support import preset, until_state
from workflows.registry import WORKFLOWS
from workflows.ticket import TicketWorkflow

# The demo actors (models/demo.py) as the API would pass them to the workflow.
PEOPLE = {a.id: ActorRef(id=a.id, roles=list(a.roles), regions=list(a.regions), groups=[]) for a in demo.ACTORS}
ADMIN, AGENT, SUPERVISOR, MANAGER = PEOPLE["admin"], PEOPLE["agent-wang"], PEOPLE["sup-zhou"], PEOPLE["mgr-sun"]
GM, FINANCE, LEGAL = PEOPLE["gm-zheng"], PEOPLE["fin-qian"], PEOPLE["legal-wu"]
ENGINEER, QC, WAREHOUSE, LOGISTICS, SALES = (PEOPLE[i] for i in ("eng-li", "qc-ma", "wh-xu", "lg-he", "sales-gao"))
CUSTOMER = PEOPLE["gateway-qr"]  # customer events arrive through the channel gateway

S = TicketStatus


def cny(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "CNY"}


# --- helpers ---


class Env:
    def __init__(self, ts: WorkflowEnvironment, queue: str, db: Database) -> None:
        self.ts, self.queue, self.db = ts, queue, db


@pytest.fixture
async def env(tsenv: WorkflowEnvironment, db: Database):
    queue = f"tq-presets-{uuid.uuid4().hex[:8]}"
    async with Worker(tsenv.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        yield Env(tsenv, queue, db)


async def start(
    env: Env,
    key: str,
    *,
    by: ActorRef = AGENT,
    priority: Priority | None = None,
    template: TemplateVersion | None = None,
    history_limit: int | None = None,
    **fields: Any,
) -> WorkflowHandle:
    """Start a ticket on the preset ``key`` (or ``template``) in region east with the given form values."""
    template = template or preset(key)
    ticket_id = f"P{uuid.uuid4().hex[:12].upper()}"
    input = TicketInput(
        ticket_id=ticket_id,
        ticket_type=key,
        region="east",
        priority=priority or template.spec.default_priority,
        title=f"{template.spec.name} #{ticket_id}",
        created_by=by,
        created_at=datetime.now(UTC),  # SLA clocks run from intake
        template=template,
        fields=fields,
        history_limit=history_limit,
    )
    return await env.ts.client.start_workflow(TicketWorkflow.run, input, id=f"ticket-{ticket_id}", task_queue=env.queue)


ACTIONS: dict[str, tuple[Any, type]] = {
    "claim": (TicketWorkflow.claim, ClaimInput),
    "assign": (TicketWorkflow.assign, AssignInput),
    "start": (TicketWorkflow.start, StartInput),
    "complete": (TicketWorkflow.complete, CompleteInput),
    "resolve": (TicketWorkflow.resolve, ResolveInput),
    "approve": (TicketWorkflow.approve, ApproveInput),
    "reject": (TicketWorkflow.reject, RejectInput),
    "close": (TicketWorkflow.close, CloseInput),
    "cancel": (TicketWorkflow.cancel, CancelInput),
}


async def act(h: WorkflowHandle, action: str, who: ActorRef, **body: Any) -> TicketState:
    """One human action (an Update); the reply is the state once the walk has moved on."""
    update, model = ACTIONS[action]
    return await h.execute_update(update, model(actor=who, **body))


async def refused(h: WorkflowHandle, action: str, who: ActorRef, **body: Any) -> ApplicationError:
    """The action must fail; returns the workflow's refusal (``.type`` is the refusal kind)."""
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await act(h, action, who, **body)
    cause = err.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def work(h: WorkflowHandle, who: ActorRef, node: str, claim: bool = True, **fields: Any) -> TicketState:
    """Do one task: claim it (unless it was assigned directly), start it, complete it with ``fields``."""
    if claim:
        s = await act(h, "claim", who, node=node)
        assert s.nodes[node].assignee == who.id
    s = await act(h, "start", who, node=node)
    assert s.nodes[node].status == NodeStatus.IN_PROGRESS
    s = await act(h, "complete", who, node=node, fields=fields)
    assert s.nodes[node].status == NodeStatus.DONE and node not in s.active
    return s


async def until(
    h: WorkflowHandle, check: Callable[[TicketState], Any], what: str, timeout: float = 15.0
) -> TicketState:
    return await until_state(h, check, what, timeout)


async def until_active(h: WorkflowHandle, *nodes: str) -> TicketState:
    """Until the given nodes (or, with none given, any node) are active."""
    return await until(h, lambda s: set(nodes) <= set(s.active) if nodes else s.active, f"active {nodes or 'any'}")


async def until_approvers(h: WorkflowHandle, node: str) -> TicketState:
    """Until the approval ``node`` is open and its current level's approvers are resolved."""
    return await until(h, lambda s: node in s.active and s.nodes[node].approvers, f"approvers of {node}")


async def signal(h: WorkflowHandle, name: str, **fields: Any) -> None:
    await h.execute_update(TicketWorkflow.send_event, EventInput(name=name, actor=CUSTOMER, fields=fields))


async def dispatched(h: WorkflowHandle, node: str) -> ActorRef:
    """Who dispatch gave the task to (the demo roster decides; the test acts as them)."""
    s = await until(h, lambda s: s.nodes[node].assignee is not None, f"{node} dispatched")
    return PEOPLE[s.nodes[node].assignee]


async def finish(env: Env, h: WorkflowHandle, by: ActorRef = AGENT) -> TicketState:
    """The ticket has reached its end (resolved): close it and return the workflow's final state."""
    s = await until(h, lambda s: s.status == S.RESOLVED, "resolved")
    assert s.active == []
    s = await act(h, "close", by)
    assert s.status == S.CLOSED
    final = (await h.result()).state
    assert final.status == S.CLOSED and final.active == [] and final.closed_at is not None
    await assert_projected(env, final)
    return final


async def assert_projected(env: Env, final: TicketState) -> None:
    """The real projection wrote the ticket row and every event, in seq order."""
    async with env.db.session() as session:
        row = await session.get(Ticket, final.ticket_id)
        events = select(TicketEventRow.seq).where(TicketEventRow.ticket_id == final.ticket_id)
        seqs = (await session.exec(events.order_by(col(TicketEventRow.seq)))).all()
    assert row is not None and (row.status, row.seq) == (final.status.value, final.seq)
    assert list(seqs) == list(range(1, final.seq + 1))


def votes(state: TicketState, node: str) -> list[tuple[int, str, str]]:
    return [(v.level, v.actor_id, v.decision) for v in state.nodes[node].votes]


# --- general ---


async def test_general_claim_start_resolve_close(env):
    h = await start(env, "general")
    s = await until_active(h, "work")
    assert (s.status, s.nodes["work"].candidates, s.nodes["work"].backups) == (S.NEW, "role:engineer", ["sup-zhou"])

    s = await act(h, "claim", ENGINEER)
    assert (s.status, s.assignee, s.nodes["work"].status) == (S.ASSIGNED, "eng-li", NodeStatus.ASSIGNED)
    s = await act(h, "start", ENGINEER)
    assert s.status == S.IN_PROGRESS
    s = await act(h, "resolve", ENGINEER, resolution="fan replaced")
    assert (s.status, s.active) == (S.RESOLVED, [])

    final = await finish(env, h)
    assert final.path == ["work", "done"]
    assert final.resolution == "fan replaced"
    assert final.nodes["work"].outcome == "completed"


# --- equipment_repair ---

REPAIR = dict(device_id="CMP-0042", fault="overheating", contact_phone="+86 21 5555 0100")


async def test_equipment_repair_without_parts_confirmed_by_customer(env):
    h = await start(env, "equipment_repair", **REPAIR)
    s = await until_active(h, "diagnose")
    assert s.nodes["diagnose"].candidates == "role:engineer"
    ENGINEER = await dispatched(h, "diagnose")  # the nearest qualified available engineer
    await act(h, "start", ENGINEER, node="diagnose")

    # A task refuses completion without its required fields, and fields outside its form.
    cause = await refused(h, "complete", ENGINEER, node="diagnose", fields={"diagnosis": "fan bearing worn"})
    assert cause.type == "FormIncomplete"
    assert cause.details[0]["problems"] == [{"field": "parts_needed", "msg": "required to complete this step"}]
    fields = {"diagnosis": "x", "parts_needed": False, "repair_cost": cny("1")}
    cause = await refused(h, "complete", ENGINEER, node="diagnose", fields=fields)
    assert cause.type == "FormIncomplete"
    assert cause.details[0]["problems"] == [{"field": "repair_cost", "msg": "not editable at diagnose"}]
    s = await h.query(TicketWorkflow.get_state)
    assert s.nodes["diagnose"].status == NodeStatus.IN_PROGRESS and "diagnosis" not in s.fields

    fields = {"diagnosis": "fan bearing worn", "parts_needed": False}
    s = await act(h, "complete", ENGINEER, node="diagnose", fields=fields)
    assert s.active == ["repair"]
    assert s.nodes["need_parts"].outcome == "repair"  # the gateway's default: no parts

    s = await work(h, ENGINEER, "repair", repair_cost=cny("380.00"), minutes_worked="45")
    assert s.active == ["confirm"] and s.nodes["confirm"].status == NodeStatus.WAITING
    assert s.nodes["consume"].outcome == "nothing_reserved"
    settled = s.nodes["settle"]
    assert settled.outcome == "settled" and settled.result["over_budget"] is False
    assert Decimal(settled.result["total"]) > 0 and settled.result["currency"] == "CNY"
    assert s.status == S.IN_PROGRESS

    await signal(h, "customer_confirmed")
    s = await until(h, lambda s: s.status == S.RESOLVED, "customer confirmation")
    assert s.nodes["confirm"].outcome == "customer_confirmed"

    final = await finish(env, h)
    assert final.path == ["diagnose", "need_parts", "repair", "consume", "settle", "confirm", "done"]
    assert "request_parts" not in final.nodes and "purchase_request_id" not in final.fields
    assert final.fields == {
        **REPAIR,
        "customer_tier": "standard",  # the field's default
        "diagnosis": "fan bearing worn",
        "parts_needed": False,
        "repair_cost": cny("380.00"),
        "minutes_worked": "45",
    }


async def test_equipment_repair_with_parts_then_confirmation_times_out(env):
    """Not enough stock → purchase request → parts arrive → reserved, used, priced over budget →
    a supervisor approves the cost → the customer never confirms."""
    h = await start(env, "equipment_repair", **REPAIR)
    await until_active(h, "diagnose")
    parts = dict(parts_needed=True, part_sku="SNS-TEMP-PT100", part_quantity="500")
    who = await dispatched(h, "diagnose")
    s = await work(h, who, "diagnose", claim=False, diagnosis="sensor array burnt", **parts)
    # need_parts → reserve (insufficient) → request_parts (purchasing.create_request) → waiting.
    assert s.active == ["wait_parts"]
    assert (s.nodes["need_parts"].outcome, s.nodes["reserve"].outcome) == ("reserve", "insufficient")
    request_id = s.fields["purchase_request_id"]
    assert isinstance(request_id, int) and request_id > 0
    assert s.nodes["request_parts"].result == {"request_id": request_id, "status": "requested"}
    async with env.db.session() as session:
        row = await session.get(PurchaseRequest, request_id)
        assert (row.ticket_id, row.sku, row.quantity, row.reason) == (
            s.ticket_id,
            "SNS-TEMP-PT100",
            500,
            "repair CMP-0042",
        )
        await receive(await session.connection(), key=f"po:{request_id}", warehouse="WH-SH-PD",
                      sku="SNS-TEMP-PT100", quantity=500, actor_id="wh-xu")  # fmt: skip
        await session.commit()

    await signal(h, "parts_arrived")
    s = await until_active(h, "repair")
    assert s.nodes["wait_parts"].outcome == "parts_arrived" and s.nodes["reserve"].outcome == "reserved"
    assert s.reservations == ["reserve"]

    s = await work(h, ENGINEER, "repair", repair_cost=cny("1260.50"), minutes_worked="90")
    assert s.nodes["consume"].result["consumed"][0]["quantity"] == 500 and s.reservations == []
    assert s.nodes["settle"].outcome == "over_budget" and s.nodes["settle"].result["over_budget"] is True
    s = await until_approvers(h, "cost_approval")
    assert "sup-zhou" in s.nodes["cost_approval"].approvers
    s = await act(h, "approve", PEOPLE["sup-zhou"], node="cost_approval")
    assert s.active == ["confirm"]
    await env.ts.sleep(timedelta(days=2, hours=1))  # the customer never confirms (P2D)
    s = await until(h, lambda s: s.status == S.RESOLVED, "confirmation timeout")
    assert s.nodes["confirm"].outcome == "timeout"

    final = await finish(env, h)
    assert final.path == [
        "diagnose", "need_parts", "reserve", "request_parts", "wait_parts", "reserve", "repair",
        "consume", "settle", "cost_approval", "confirm", "done",
    ]  # fmt: skip
    async with env.db.session() as session:
        mine = select(func.count()).select_from(PurchaseRequest).where(PurchaseRequest.ticket_id == final.ticket_id)
        assert (await session.exec(mine)).one() == 1


# --- ecommerce_return ---

RETURN = dict(order_no="EC-20261124-0007", return_reason="damaged", refund_amount=cny("199.00"))


async def _registered_and_checked(h: WorkflowHandle, qc_result: str) -> TicketState:
    await until_active(h, "register")
    s = await work(h, AGENT, "register", items="1 × electric kettle")
    assert s.active == ["quality_check"] and s.nodes["quality_check"].candidates == "role:qc"
    return await work(h, QC, "quality_check", qc_result=qc_result)


async def test_ecommerce_return_qc_pass_runs_three_parallel_branches(env):
    h = await start(env, "ecommerce_return", **RETURN)
    s = await _registered_and_checked(h, "pass")
    assert s.nodes["qc_gate"].outcome == "fulfil"
    assert s.active == ["fulfil", "restock", "pickup", "refund"]
    assert {n: (s.nodes[n].branch, s.nodes[n].candidates) for n in ("restock", "pickup", "refund")} == {
        "restock": ("warehouse", "role:warehouse"),
        "pickup": ("logistics", "role:logistics"),
        "refund": ("finance", "role:finance"),
    }

    # Several tasks are open: an action that could apply to several needs `node=`.
    cause = await refused(h, "claim", ADMIN)
    assert cause.type == "NodeAmbiguous"
    assert cause.details[0]["nodes"] == ["restock", "pickup", "refund"]
    # …and a role may only claim its own branch's task.
    assert (await refused(h, "claim", LOGISTICS, node="restock")).type == "NotAllowed"

    # Each branch by its own role, in an order unlike the template's.
    s = await work(h, FINANCE, "refund", refund_reference="RF-88421")
    assert s.active == ["fulfil", "restock", "pickup"]  # the other branches are still open
    assert s.status != S.RESOLVED
    s = await work(h, LOGISTICS, "pickup", tracking_no="SF1234567890")
    assert s.active == ["fulfil", "restock"]
    s = await act(h, "claim", WAREHOUSE, node="restock")
    s = await act(h, "start", WAREHOUSE)  # a single task could take `start` now: no node needed
    s = await act(h, "complete", WAREHOUSE, fields={"restocked": True})
    assert (s.status, s.active) == (S.RESOLVED, [])
    assert s.nodes["fulfil"].outcome == "closed"

    final = await finish(env, h)
    assert final.path == ["register", "quality_check", "qc_gate", "fulfil", "restock", "pickup", "refund", "closed"]
    assert final.branches == {"fulfil": {"warehouse": "$joined", "logistics": "$joined", "finance": "$joined"}}
    assert {n: final.nodes[n].assignee for n in ("restock", "pickup", "refund")} == {
        "restock": "wh-xu",
        "pickup": "lg-he",
        "refund": "fin-qian",
    }
    assert final.fields == {
        **RETURN,
        "items": "1 × electric kettle",
        "qc_result": "pass",
        "restocked": True,
        "tracking_no": "SF1234567890",
        "refund_reference": "RF-88421",
    }


async def test_ecommerce_return_qc_fail_is_refused(env):
    h = await start(env, "ecommerce_return", **RETURN)
    s = await _registered_and_checked(h, "fail")
    assert s.nodes["qc_gate"].outcome == "refuse"
    assert s.active == ["refuse"] and s.nodes["refuse"].candidates == "role:agent"
    s = await work(h, AGENT, "refuse")
    assert s.status == S.RESOLVED

    final = await finish(env, h)
    assert final.path == ["register", "quality_check", "qc_gate", "refuse", "refused"]
    assert not {"fulfil", "restock", "pickup", "refund"} & set(final.nodes)
    assert final.fields["qc_result"] == "fail"


# --- discount_approval ---

DISCOUNT = dict(customer="ACME Trading", justification="three-year framework order")


@pytest.mark.parametrize(
    ("amount", "levels", "approvers"),
    [
        ("5000.00", ["manager"], [MANAGER]),
        ("50000.00", ["manager", "finance"], [MANAGER, FINANCE]),
    ],
    ids=["5k-manager-only", "50k-manager-then-finance"],
)
async def test_discount_approval_levels_by_amount(env, amount, levels, approvers):
    h = await start(env, "discount_approval", amount=cny(amount), **DISCOUNT)
    s = await until_approvers(h, "approve")
    assert s.nodes["approve"].levels == levels
    for i, approver in enumerate(approvers):
        assert s.nodes["approve"].level == i and approver.id in s.nodes["approve"].approvers
        s = await act(h, "approve", approver, reason="ok")
    assert s.status == S.RESOLVED
    assert s.nodes["approve"].outcome == "approved"
    assert s.nodes["contract_gate"].outcome == "approved"  # no contract attached: no legal review

    final = await finish(env, h)
    assert final.path == ["approve", "contract_gate", "approved"]
    assert votes(final, "approve") == [(i, a.id, "approve") for i, a in enumerate(approvers)]
    assert final.fields["contract_attached"] is False  # the template's default


async def test_discount_approval_over_100k_with_contract_goes_to_legal(env):
    h = await start(env, "discount_approval", amount=cny("150000.00"), contract_attached=True, **DISCOUNT)
    s = await until_approvers(h, "approve")
    assert s.nodes["approve"].levels == ["manager", "finance", "general_manager"]
    for approver in (MANAGER, FINANCE, GM):
        assert approver.id in s.nodes["approve"].approvers
        s = await act(h, "approve", approver)
    assert s.active == ["legal_review"]
    assert s.nodes["contract_gate"].outcome == "legal_review"
    assert (s.nodes["legal_review"].levels, s.nodes["legal_review"].approvers) == (["legal"], ["legal-wu"])
    s = await act(h, "approve", LEGAL, reason="contract reviewed")
    assert s.status == S.RESOLVED

    final = await finish(env, h)
    assert final.path == ["approve", "contract_gate", "legal_review", "approved"]
    assert votes(final, "approve") == [
        (0, "mgr-sun", "approve"), (1, "fin-qian", "approve"), (2, "gm-zheng", "approve"),
    ]  # fmt: skip
    assert votes(final, "legal_review") == [(0, "legal-wu", "approve")]


async def test_discount_approval_rejected_by_finance_is_revised_and_approved(env):
    h = await start(env, "discount_approval", amount=cny("150000.00"), **DISCOUNT)
    await until_approvers(h, "approve")
    s = await act(h, "approve", MANAGER)
    assert "fin-qian" in s.nodes["approve"].approvers  # every finance actor of the region (other tests add some)
    s = await act(h, "reject", FINANCE, reason="margin too thin")

    # Back to the requester, who holds the revise task directly.
    assert s.active == ["revise"]
    assert (s.nodes["revise"].assignee, s.nodes["revise"].status) == ("agent-wang", NodeStatus.ASSIGNED)
    rejected = s.nodes["approve"]
    assert (rejected.outcome, rejected.level) == ("rejected", 1)
    assert votes(s, "approve") == [(0, "mgr-sun", "approve"), (1, "fin-qian", "reject")]
    assert rejected.votes[1].reason == "margin too thin"

    s = await work(h, AGENT, "revise", claim=False, amount=cny("8000.00"), justification="smaller first order")
    # The approval restarts from its first level, and now only the manager level applies.
    assert s.active == ["approve"]
    assert (s.nodes["approve"].levels, s.nodes["approve"].level, s.nodes["approve"].votes) == (["manager"], 0, [])
    assert s.nodes["approve"].approvers == ["mgr-sun"]
    s = await act(h, "approve", MANAGER)
    assert s.status == S.RESOLVED

    final = await finish(env, h)
    assert final.path == ["approve", "revise", "approve", "contract_gate", "approved"]
    assert votes(final, "approve") == [(0, "mgr-sun", "approve")]
    assert final.fields["amount"] == cny("8000.00") and final.fields["justification"] == "smaller first order"


async def test_discount_approval_refuses_out_of_turn_and_repeated_votes(env):
    h = await start(env, "discount_approval", amount=cny("50000.00"), **DISCOUNT)
    await until_approvers(h, "approve")

    # Finance may not decide the manager level, nor may anyone outside it.
    assert (await refused(h, "approve", FINANCE)).type == "NotAllowed"
    assert (await refused(h, "reject", LEGAL, reason="no")).type == "NotAllowed"

    # The manager approves twice at once (a double click): one vote counts, the other is refused —
    # AlreadyVoted when both reach the workflow in one task, otherwise NotAllowed, because the
    # first vote (quorum any) has already moved the approval on to the finance level.
    results = await asyncio.gather(act(h, "approve", MANAGER), act(h, "approve", MANAGER), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1, results
    assert isinstance(failed[0], WorkflowUpdateFailedError)
    assert failed[0].cause.type in ("AlreadyVoted", "NotAllowed")

    s = await h.query(TicketWorkflow.get_state)
    assert votes(s, "approve") == [(0, "mgr-sun", "approve")]
    assert s.nodes["approve"].level == 1 and "fin-qian" in s.nodes["approve"].approvers
    # Later, too: the manager level is decided and the manager is no approver of the finance level.
    assert (await refused(h, "approve", MANAGER)).type == "NotAllowed"

    await act(h, "approve", FINANCE)
    assert (await refused(h, "approve", FINANCE)).type == "InvalidTransition"  # nothing left to approve
    final = await finish(env, h)
    assert votes(final, "approve") == [(0, "mgr-sun", "approve"), (1, "fin-qian", "approve")]


async def test_discount_approval_same_approver_twice_on_one_level_is_already_voted(env):
    """Every preset level is decided by its first vote (quorum any), so a repeated vote on the *same*
    level needs a level with several votes: the preset with its first level signed off by any two
    engineers of the region."""
    base = preset("discount_approval")
    spec = base.spec.model_copy(deep=True)
    spec.node("approve").levels[0] = ApprovalLevel(
        name="engineering", approvers=ApproverRule(role="engineer"), quorum=Quorum.N_OF_M, n=2
    )
    variant = base.model_copy(update={"spec": spec, "version": base.version + 1})

    h = await start(env, "discount_approval", template=variant, amount=cny("50000.00"), **DISCOUNT)
    s = await until_approvers(h, "approve")
    assert s.nodes["approve"].levels == ["engineering", "finance"]
    east = sorted(a.id for a in demo.ACTORS if "engineer" in a.roles and "east" in a.regions)
    assert s.nodes["approve"].approvers == east and {"eng-li", "eng-zhao"} <= set(east)
    assert (s.nodes["approve"].quorum, s.nodes["approve"].needed) == ("n_of_m", 2)

    s = await act(h, "approve", ENGINEER)
    assert s.nodes["approve"].level == 0  # one of two votes: the level stays open
    cause = await refused(h, "approve", ENGINEER)
    assert cause.type == "AlreadyVoted"
    assert (await refused(h, "reject", ENGINEER, reason="changed my mind")).type == "AlreadyVoted"
    assert (await refused(h, "approve", FINANCE)).type == "NotAllowed"  # out of turn

    s = await act(h, "approve", PEOPLE["eng-zhao"])
    assert s.nodes["approve"].level == 1 and "fin-qian" in s.nodes["approve"].approvers
    await act(h, "approve", FINANCE)
    final = await finish(env, h)
    assert votes(final, "approve") == [(0, "eng-li", "approve"), (0, "eng-zhao", "approve"), (1, "fin-qian", "approve")]


# --- trial_class ---

TRIAL = dict(student_name="Lin Xiaoyu", phone="+86 138 0013 8000")


async def _booked(h: WorkflowHandle) -> TicketState:
    await until_active(h, "enquiry")
    s = await work(h, SALES, "enquiry", course="piano")
    assert s.active == ["book"]
    s = await work(h, SALES, "book", trial_at="2026-11-28T10:00:00+08:00")
    assert s.active == ["attend"] and s.nodes["attend"].status == NodeStatus.WAITING
    return s


async def test_trial_class_attended_and_enrolled(env):
    h = await start(env, "trial_class", by=SALES, **TRIAL)
    await _booked(h)
    await signal(h, "trial_attended")
    s = await until_active(h, "follow_up")
    assert s.nodes["attend"].outcome == "trial_attended"
    s = await work(h, SALES, "follow_up", outcome="enrolled")
    assert s.nodes["decide"].outcome == "enrolled"

    final = await finish(env, h, by=SALES)  # no coordinator, but the requester may close
    assert final.path == ["enquiry", "book", "attend", "follow_up", "decide", "enrolled"]
    assert final.fields == {**TRIAL, "course": "piano", "trial_at": "2026-11-28T10:00:00+08:00", "outcome": "enrolled"}


async def test_trial_class_not_attended_is_lost(env):
    h = await start(env, "trial_class", **TRIAL)
    await _booked(h)
    await env.ts.sleep(timedelta(days=15))  # nobody reports attendance within P14D
    s = await until_active(h, "follow_up")
    assert s.nodes["attend"].outcome == "timeout"
    s = await work(h, SALES, "follow_up", outcome="lost", lost_reason="no show, not answering calls")
    assert s.nodes["decide"].outcome == "lost"

    final = await finish(env, h)
    assert final.path == ["enquiry", "book", "attend", "follow_up", "decide", "lost"]
    assert (final.fields["outcome"], final.fields["lost_reason"]) == ("lost", "no show, not answering calls")


async def test_a_wait_keeps_its_deadline_across_continue_as_new(env):
    h = await start(env, "trial_class", history_limit=120, **TRIAL)
    await _booked(h)
    first_run = h.result_run_id
    await env.ts.sleep(timedelta(days=10))
    for i in range(40):  # comments grow the history until the ticket continues as new
        await h.execute_update(TicketWorkflow.comment, CommentInput(actor=SALES, text=f"called again ({i})"))
        if (await h.describe()).run_id != first_run:
            break
    assert (await h.describe()).run_id != first_run
    await env.ts.sleep(timedelta(days=5))  # day 15: the P14D wait is over, not restarted at day 10
    s = await until_active(h, "follow_up")
    assert s.nodes["attend"].outcome == "timeout"


# --- installation ---


@pytest.mark.parametrize("accepted", [True, False], ids=["customer-accepts", "acceptance-times-out"])
async def test_installation(env, accepted):
    address = {"lat": "31.2304", "lon": "121.4737", "address": "88 Century Ave, Pudong"}
    h = await start(env, "installation", order_no="ERP-55012", product="Heat pump HP-9", address=address)
    s = await until_active(h, "schedule")
    assert s.nodes["schedule"].candidates == "role:agent"
    s = await work(h, AGENT, "schedule", appointment="2026-11-26T14:00:00+08:00")
    assert s.active == ["install"]
    s = await until(h, lambda s: bool(s.nodes["install"].offers), "grab pool offer")
    first = s.nodes["install"].offers[0]
    s = await work(h, PEOPLE[first], "install", serial_no="HP9-000731")  # the first offeree grabs it
    assert s.active == ["acceptance"]

    if accepted:
        await signal(h, "customer_accepted")
    else:
        await env.ts.sleep(timedelta(days=3, hours=1))  # P3D without an answer
    s = await until(h, lambda s: s.status == S.RESOLVED, "acceptance")
    assert s.nodes["acceptance"].outcome == ("customer_accepted" if accepted else "timeout")

    final = await finish(env, h)
    assert final.path == ["schedule", "install", "acceptance", "done"]
    assert (final.fields["appointment"], final.fields["serial_no"]) == ("2026-11-26T14:00:00+08:00", "HP9-000731")


# --- complaint ---


@pytest.mark.parametrize(
    ("tier", "priority", "node", "who"),
    [
        ("vip", Priority.NORMAL, "supervisor", SUPERVISOR),
        ("regular", Priority.HIGH, "duty_agent", AGENT),
        ("regular", Priority.URGENT, "supervisor", SUPERVISOR),
    ],
    ids=["vip-to-supervisor", "regular-to-duty-agent", "urgent-to-supervisor"],
)
async def test_complaint_routing(env, tier, priority, node, who):
    h = await start(env, "complaint", priority=priority, customer_tier=tier, complaint="rude technician")
    s = await until_active(h, node)
    assert s.active == [node]
    assert s.nodes["route"].outcome == node
    assert s.nodes[node].candidates == ("role:supervisor" if node == "supervisor" else "role:agent")
    fields = {"compensation": cny("200.00")} if node == "supervisor" else {}
    s = await work(h, who, node, **fields)
    assert s.status == S.RESOLVED

    final = await finish(env, h)
    assert final.path == ["route", node, "done"]
    assert final.nodes[node].assignee == who.id
    assert final.fields.get("compensation") == fields.get("compensation")


# --- cancel ---


async def test_cancel_in_the_parallel_step(env):
    h = await start(env, "ecommerce_return", **RETURN)
    await _registered_and_checked(h, "pass")
    await work(h, FINANCE, "refund", refund_reference="RF-1")
    s = await act(h, "claim", WAREHOUSE, node="restock")
    assert s.active == ["fulfil", "restock", "pickup"]

    s = await act(h, "cancel", AGENT, reason="customer withdrew the return")
    assert (s.status, s.active) == (S.CANCELLED, [])

    final = (await h.result()).state
    assert (final.status, final.active) == (S.CANCELLED, [])
    assert final.closed_at is not None
    assert {n: final.nodes[n].status for n in ("fulfil", "restock", "pickup", "refund")} == {
        "fulfil": NodeStatus.CANCELLED,
        "restock": NodeStatus.CANCELLED,
        "pickup": NodeStatus.CANCELLED,
        "refund": NodeStatus.DONE,
    }
    assert "closed" not in final.path
    await assert_projected(env, final)
