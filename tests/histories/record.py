"""Record workflow histories for the replay test: ``python -m tests.histories.record <scenario>...``.

Runs each scenario on a real dev server and writes ``tests/histories/<name>.json``. The
activities are mocks registered under the real activity names (projection, notifications,
directory, dispatch, inventory, settlement, purchasing) that answer with realistic payloads,
so the histories hold what a real worker would have recorded. Re-record only on purpose: a
history recorded before a change is what proves the change keeps running tickets replayable
(``ticket_lifecycle`` was recorded before actions were signed: it shows tickets of that
release still replay, so it is never recorded again).
``python -m tests.histories.record sla_escalation approval_deadline`` records those two scenarios
(there is no "record everything": each name overwrites a history on purpose).

Together the histories cover every preset of ``templates/``, every node type (task, approval,
parallel, gateway, wait, notify, action, settle, reserve_parts, consume_parts, end) and the
timers, signals and updates a refactor of the engine is most likely to break; each scenario's
docstring says what it shows. Timers: the dev server runs in real time, so scenarios that
wait for an SLA milestone, an offer window, an approval deadline or a wait's duration use a
copy of the preset (``variant``) whose durations are seconds, with no calendar (24x7).
"""

import asyncio
import itertools
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.purchasing import PurchaseRequestIn, PurchaseRequestOut
from activities.settlement import budget_check, price_ticket
from activities.stock_alerts import LowStockCheck, LowStockResult
from api.signing import signing_client
from domain import signing
from models import demo
from models import search_attributes as attrs
from models.demo_pricing import DEMO_PRICING
from models.directory import PeopleQuery, PeopleResult
from models.dispatch import DispatchCall, DispatchDecision, DispatchOutcome, DispatchRequest, ScoredCandidate, Strategy
from models.inventory import (
    Allocation,
    ConsumeInput,
    ConsumeResult,
    NodeStockQuantity,
    ReleaseInput,
    ReleaseResult,
    ReservationStatus,
    ReserveInput,
    ReserveResult,
    Shortage,
    StockQuantity,
)
from models.settlement import SettleInput, SettleResult
from models.template import SLA, DispatchSpec, NotifyNode, TemplateSpec, TemplateVersion, WaitNode
from models.ticket import (
    ActorRef,
    ApproveInput,
    AssignInput,
    CancelInput,
    ChangePriorityInput,
    ClaimInput,
    CloseInput,
    CommentInput,
    CompleteInput,
    DelegateInput,
    EventInput,
    PersonLeft,
    PersonLeftInput,
    Priority,
    ProjectionInput,
    RejectInput,
    ReopenInput,
    RequestInfoInput,
    ResolveInput,
    ReturnInput,
    StartInput,
    TicketInput,
    TicketState,
)
from tests.support import preset
from workflows.person_left import PersonLeftWorkflow
from workflows.registry import WORKFLOWS
from workflows.ticket import MOVING, TicketWorkflow

HERE = Path(__file__).parent
# The demo people (models/demo.py) as the API passes them to the workflow.
PEOPLE = {a.id: ActorRef(id=a.id, roles=list(a.roles), regions=list(a.regions)) for a in demo.ACTORS}
AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
MANAGER = ActorRef(id="mgr-sun", roles=["manager"], regions=["east"])
ENG2, SUPERVISOR, FINANCE, GM, LEGAL = (PEOPLE[i] for i in ("eng-zhao", "sup-zhou", "fin-qian", "gm-zheng", "legal-wu"))
QC, WAREHOUSE, LOGISTICS, SALES = (PEOPLE[i] for i in ("qc-ma", "wh-xu", "lg-he", "sales-gao"))
CUSTOMER, ERP = PEOPLE["gateway-qr"], PEOPLE["gateway-erp"]  # channel gateways speak for the customer
SITE = {"lat": 31.2304, "lon": 121.4737, "address": "People's Square, Shanghai"}
REPAIR = {"device_id": "CMP-0042", "fault": "overheating", "site": SITE, "contact_phone": "+86 21 5555 0100"}
# Re-record after a deliberate, incompatible change to the workflow (only before a release:
# afterwards such a change needs workflow.patched() so running tickets keep replaying).


# --- the world the mocked activities answer from (reset before each scenario) ---

DEPARTED: set[str] = set()  # people the directory shows as deactivated
HOLDING: dict[str, list[str]] = {}  # person → open tickets they hold (the read model's answer)
STOCK: dict[str, int] = {}  # sku → units available at WH-SH-PD
RESERVED: dict[tuple[str, str], list[Allocation]] = {}  # (ticket, reserve node) → what it holds
WAREHOUSE_CODE = "WH-SH-PD"
ENGINEERS = ["eng-li", "eng-zhao", "eng-e02"]  # the east engineers dispatch ranks, best first
_ids = itertools.count(9001)


def reset() -> None:
    DEPARTED.clear()
    HOLDING.clear()
    STOCK.clear()
    RESERVED.clear()


# --- mocked activities, under the real names ---


@activity.defn(name="notify.send")
async def send(payload: dict) -> None:
    pass


@activity.defn(name="projection.record_ticket_changes")
async def record(change: ProjectionInput) -> None:
    pass


@activity.defn(name="directory.resolve_people")
async def resolve_people(query: PeopleQuery) -> PeopleResult:
    """As the real one over the demo people: the first active manager up the chain, or the
    active members of a role / group working in a region."""
    people = {a.id: a for a in demo.ACTORS}
    if query.manager_of:
        actor, seen = people.get(query.manager_of), {query.manager_of}
        while actor is not None and actor.manager_id and actor.manager_id not in seen:
            seen.add(actor.manager_id)
            actor = people.get(actor.manager_id)
            if actor is not None and actor.id not in DEPARTED:
                return PeopleResult(ids=[actor.id])
        return PeopleResult(ids=[])
    return PeopleResult(ids=sorted(
        a.id for a in demo.ACTORS
        if a.id not in DEPARTED
        and (not query.role or query.role in a.roles)
        and (not query.group or query.group in a.groups)
        and (not query.region or "*" in a.regions or query.region in a.regions)
    ))  # fmt: skip


@activity.defn(name="directory.is_active")
async def is_active(person_id: str) -> bool:
    return person_id in PEOPLE and person_id not in DEPARTED


@activity.defn(name="directory.held_tickets")
async def held_tickets(person_id: str) -> list[str]:
    return HOLDING.get(person_id, [])


def _ranked(people: list[str], req: DispatchRequest) -> list[ScoredCandidate]:
    """Scores that fall with the rank (nearest first), explained as ``domain/dispatch.py`` does."""
    return [
        ScoredCandidate(
            id=p, rank=i + 1, score=round(0.86 - 0.11 * i, 4), distance_km=round(2.4 + 4.1 * i, 1),
            contributions={"distance": round(0.34 - 0.06 * i, 4), "load": 0.2, "skill": 0.18, "seniority": 0.14},
            load=i, capacity=6, seniority=3, skill_levels=dict.fromkeys(req.required_skills, 3),
        )
        for i, p in enumerate(people)
    ]  # fmt: skip


@activity.defn(name="dispatch.decide")
async def decide(call: DispatchCall) -> DispatchDecision:
    """A fixed ranking of the east engineers, without the excluded and the departed: the first
    of them (or of the named assignee and backups) is assigned, or the top N are offered."""
    req = call.request
    pool = [p for p in call.named or ENGINEERS if p not in DEPARTED and p not in req.excluded]
    ranked = _ranked(pool[: req.top_n], req)
    decision = DispatchDecision(
        ticket_id=req.ticket_id, strategy=req.strategy, outcome=DispatchOutcome.NONE, ranked=ranked, considered=24,
        qualified=len(pool), rejections={"skills": 5, "availability": 2, "excluded": len(req.excluded)},
        decided_at=datetime.now(UTC), explanation="nobody qualified is available",
    )  # fmt: skip
    if not pool:
        return decision
    if req.strategy is Strategy.GRAB_POOL and not call.named:
        why = f"offered to the top {len(ranked)}; if nobody claims in time, {pool[0]} (best score)"
        offer = {"outcome": DispatchOutcome.OFFERED, "offers": pool[: req.top_n], "fallback_id": pool[0]}
        return decision.model_copy(update={**offer, "explanation": why})
    backup = bool(call.named) and pool[0] != call.named[0]
    why = f"{pool[0]}: nearest qualified ({ranked[0].distance_km} km), load {ranked[0].load}/{ranked[0].capacity}"
    outcome = DispatchOutcome.BACKUP if backup else DispatchOutcome.ASSIGNED
    chosen = {"outcome": outcome, "chosen_id": pool[0], "chosen": ranked[0]}
    return decision.model_copy(update={**chosen, "explanation": why})


@activity.defn(name="inventory.reserve")
async def reserve(inp: ReserveInput) -> ReserveResult:
    """All or nothing from the one warehouse; idempotent by (ticket, node) once reserved."""
    key = (inp.ticket_id, inp.node_id)
    result = ReserveResult(ticket_id=inp.ticket_id, node_id=inp.node_id, status=ReservationStatus.RESERVED)
    if key not in RESERVED:
        short = [(i, ln) for i, ln in enumerate(inp.lines) if STOCK.get(ln.sku, 0) < ln.quantity]
        if short:
            shortages = [Shortage(line=i, sku=ln.sku, requested=ln.quantity, missing=ln.quantity - STOCK.get(ln.sku, 0))
                         for i, ln in short]  # fmt: skip
            return result.model_copy(update={"status": ReservationStatus.INSUFFICIENT, "shortages": shortages})
        for ln in inp.lines:
            STOCK[ln.sku] -= ln.quantity
        RESERVED[key] = [Allocation(line=i, sku=ln.sku, warehouse=WAREHOUSE_CODE, quantity=ln.quantity)
                         for i, ln in enumerate(inp.lines)]  # fmt: skip
    return result.model_copy(update={"allocations": RESERVED[key]})


@activity.defn(name="inventory.consume")
async def consume(inp: ConsumeInput) -> ConsumeResult:
    """What was used is consumed, the rest of the reservation goes back to stock."""
    used = {u.sku: u.quantity for u in inp.used}
    consumed, released = [], []
    for a in RESERVED.pop((inp.ticket_id, inp.node_id), []):
        took = min(a.quantity, used.get(a.sku, 0))
        consumed.append(StockQuantity(sku=a.sku, warehouse=a.warehouse, quantity=took))
        if a.quantity > took:
            released.append(StockQuantity(sku=a.sku, warehouse=a.warehouse, quantity=a.quantity - took))
            STOCK[a.sku] += a.quantity - took
    return ConsumeResult(ticket_id=inp.ticket_id, node_id=inp.node_id, consumed=consumed, released=released)


@activity.defn(name="inventory.release")
async def release(inp: ReleaseInput) -> ReleaseResult:
    """The cancel compensation: whatever the ticket (or one node) still holds goes back."""
    released = []
    for ticket, node in [k for k in RESERVED if k[0] == inp.ticket_id and inp.node_id in (None, k[1])]:
        for a in RESERVED.pop((ticket, node)):
            released.append(NodeStockQuantity(node_id=node, sku=a.sku, warehouse=a.warehouse, quantity=a.quantity))
            STOCK[a.sku] += a.quantity
    return ReleaseResult(ticket_id=inp.ticket_id, node_id=inp.node_id, released=released)


@activity.defn(name="inventory.announce_low_stock")
async def announce_low_stock(check: LowStockCheck) -> LowStockResult:
    return LowStockResult(announced=[])


@activity.defn(name="settlement.settle")
async def settle(inp: SettleInput) -> SettleResult:
    """Priced by the real (pure) engine with the region's demo rules; not stored."""
    statement = price_ticket(DEMO_PRICING[inp.region], inp)
    total, cur = statement.totals.total, statement.currency
    over, limit = budget_check(total, inp.budget, inp.budget_tolerance_percent)
    budget: dict[str, Any] = {}
    if inp.budget is not None:
        budget = {"budget": inp.budget, "budget_limit": limit, "budget_tolerance_percent": inp.budget_tolerance_percent}
    if over:
        budget["budget_reason"] = f"total {total} {cur} exceeds the budget {inp.budget} {cur} by {total - limit} {cur}"
    return SettleResult(
        statement_id=next(_ids), ticket_id=inp.ticket_id, ticket_version=inp.ticket_version, kind=inp.kind,
        region=inp.region, rules_version=statement.rules_version, currency=cur, total=total,
        created_at=datetime.now(UTC), over_budget=over, statement=statement, **budget,
    )  # fmt: skip


@activity.defn(name="purchasing.create_request")
async def create_request(request: PurchaseRequestIn) -> PurchaseRequestOut:
    return PurchaseRequestOut(request_id=next(_ids), status="requested")


ACTIVITIES = [send, record, resolve_people, is_active, held_tickets, decide, reserve, consume, release,
              announce_low_stock, settle, create_request]  # fmt: skip


# --- helpers ---


def cny(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "CNY"}


def variant(key: str, nodes: dict[str, dict[str, Any]] | None = None, add: tuple = (), **spec: Any) -> TemplateVersion:
    """A copy of the preset ``key`` (the next version) with some nodes changed (node id →
    attributes), nodes added and template attributes replaced, validated again."""
    base = preset(key)
    changed = [n.model_copy(update=(nodes or {})[n.id]) if n.id in (nodes or {}) else n for n in base.spec.nodes]
    copy = base.spec.model_copy(update={"nodes": [*changed, *add], **spec})
    return TemplateVersion(key=key, version=base.version + 1, spec=TemplateSpec.model_validate(copy.model_dump()))


async def open_ticket(env: WorkflowEnvironment, queue: str, key: str, template: TemplateVersion | None = None, *,
                      by: ActorRef = AGENT, priority: Priority | None = None, history_limit: int | None = None,
                      **fields: Any) -> WorkflowHandle:  # fmt: skip
    """Start a ticket of region east on the preset ``key`` (or ``template``) with these form values."""
    template = template or preset(key)
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(), ticket_type=key, region="east",
        priority=priority or template.spec.default_priority, title=f"{template.spec.name} (recorded history)",
        created_by=by, created_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC), template=template, fields=fields,
        history_limit=history_limit,
    )  # fmt: skip
    return await env.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)


async def until(h: WorkflowHandle, check: Callable[[TicketState], Any], what: str, timeout: float = 30) -> TicketState:
    """Poll the ticket's state until ``check`` holds (the walk moves on its own: timers, activities)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await h.query(TicketWorkflow.get_state)
        if check(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{h.id}: no {what} (status {state.status}, active {state.active})")
        await asyncio.sleep(0.05)


async def work(h: WorkflowHandle, who: ActorRef, node: str, claim: bool = True, **fields: Any) -> TicketState:
    """One task done: claimed (unless it is already theirs), started, completed with ``fields``."""
    await until(h, lambda s: node in s.active, f"task {node}")
    if claim:
        await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=who, node=node))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=who, node=node))
    return await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=who, node=node, fields=fields))


async def event(h: WorkflowHandle, name: str, who: ActorRef, text: str | None = None, **fields: Any) -> None:
    await h.execute_update(TicketWorkflow.send_event, EventInput(name=name, actor=who, text=text, fields=fields))


async def finish(h: WorkflowHandle, by: ActorRef = AGENT) -> str:
    """The ticket reached its end: close it and wait for the workflow to complete."""
    await until(h, lambda s: s.status == "resolved", "resolution")
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=by))
    await h.result()
    return h.id


# --- scenarios ---


async def signed_discount(env: WorkflowEnvironment, queue: str) -> str:
    """Signed actions and a declared event: a discount approved by the requester's manager
    (the amount frozen from then on), a refused rewrite of it, a customer reply, close."""
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(),
        ticket_type="discount_approval",
        template=preset("discount_approval"),
        region="east",
        priority=Priority.NORMAL,
        title="Framework discount",
        created_by=AGENT,
        created_at=datetime(2026, 12, 4, 9, 0, tzinfo=UTC),
        fields={"customer": "ACME", "amount": {"amount": "5000", "currency": "CNY"}, "justification": "3-year order"},
    )
    h = await env.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)
    while not (await h.query(TicketWorkflow.get_state)).nodes.get("approve", None):
        await asyncio.sleep(0.05)
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="urgent"), id="c-1")
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=AGENT, text="urgent"), id="c-1")  # a repeat
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER, reason="good customer"))
    await h.execute_update(TicketWorkflow.send_event, EventInput(name="customer_reply", actor=AGENT, text="thanks"))
    while (await h.query(TicketWorkflow.get_state)).status != "resolved":
        await asyncio.sleep(0.05)
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    await h.result()
    return h.id


async def lifecycle(env: WorkflowEnvironment, queue: str) -> str:
    """general before actions were signed: claim, a refused close, start, comment, resolve,
    reopen, assign, resolve, close. Kept as recorded then (``NEVER_AGAIN``)."""
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(),
        ticket_type="general",
        template=preset("general"),
        region="east",
        priority=Priority.HIGH,
        title="Compressor #3 overheating",
        created_by=AGENT,
        created_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
    )
    h = await env.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    try:
        await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))  # rejected
    except WorkflowUpdateFailedError:
        pass
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    await h.execute_update(TicketWorkflow.comment, CommentInput(actor=ENG, text="fan bearing worn"))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="fan replaced"))
    await h.execute_update(TicketWorkflow.reopen, ReopenInput(actor=AGENT, reason="still hot"))
    await h.execute_update(TicketWorkflow.assign, AssignInput(actor=AGENT, assignee="eng-li"))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="sensor replaced"))
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    await h.result()
    return h.id


async def preset_equipment_repair(env: WorkflowEnvironment, queue: str) -> str:
    """equipment_repair through its parts branch: best-score dispatch → diagnosis → gateway →
    reserve_parts (insufficient) → action purchasing.create_request → wait for ``parts_arrived``
    (sent by the warehouse) → reserve_parts again (reserved) → repair → consume_parts → settle
    over budget → the supervisor approves the cost; the customer's ``customer_confirmed`` came
    early (kept, then taken by the confirm wait) → close."""
    h = await open_ticket(env, queue, "equipment_repair", **REPAIR)
    await until(h, lambda s: s.nodes.get("diagnose") and s.nodes["diagnose"].assignee == ENG.id, "dispatch")
    parts = {"parts_needed": True, "part_sku": "SNS-TEMP-PT100", "part_quantity": "40"}
    s = await work(h, ENG, "diagnose", claim=False, diagnosis="sensor array burnt", **parts)
    assert s.active == ["wait_parts"], s.active
    STOCK["SNS-TEMP-PT100"] = 40  # the purchase order was delivered
    await event(h, "parts_arrived", WAREHOUSE, "PO delivered to WH-SH-PD")
    await work(h, ENG, "repair", repair_cost=cny("1260.50"), minutes_worked="90")
    await until(h, lambda s: s.nodes.get("cost_approval") and s.nodes["cost_approval"].approvers, "cost approvers")
    await event(h, "customer_confirmed", CUSTOMER, "works again")  # before the wait opens
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=SUPERVISOR, reason="sensors were all burnt"))
    return await finish(h)


async def cancel_releases_parts(env: WorkflowEnvironment, queue: str) -> str:
    """equipment_repair: the diagnosis reserves a part (reserve_parts, reserved), then the ticket
    is cancelled while the repair is open: the compensation releases the reservation
    (inventory.release) and the workflow ends cancelled."""
    STOCK["FAN-CMP-120"] = 5
    h = await open_ticket(env, queue, "equipment_repair", **REPAIR)
    await until(h, lambda s: s.nodes.get("diagnose") and s.nodes["diagnose"].assignee == ENG.id, "dispatch")
    parts = {"parts_needed": True, "part_sku": "FAN-CMP-120", "part_quantity": "1"}
    s = await work(h, ENG, "diagnose", claim=False, diagnosis="fan bearing worn", **parts)
    assert s.reservations == ["reserve"] and s.active == ["repair"], (s.reservations, s.active)
    await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=AGENT, reason="customer replaced the machine"))
    final = (await h.result()).state
    assert final.reservations == [] and STOCK["FAN-CMP-120"] == 5
    return h.id


async def person_left(env: WorkflowEnvironment, queue: str) -> dict[str, tuple[str, str | None]]:
    """equipment_repair through its no-parts branch, with a leaver's hand-over. A forged
    departure of someone still active is ignored; then the dispatched engineer is deactivated
    and the PersonLeft workflow (its own history) signals the ticket, which releases the
    diagnosis and dispatches it again without them; the new engineer diagnoses (no parts),
    repairs, consume_parts finds nothing reserved, settle is within budget, the requester
    confirms → close."""
    h = await open_ticket(env, queue, "equipment_repair", **REPAIR)
    await until(h, lambda s: s.nodes.get("diagnose") and s.nodes["diagnose"].assignee == ENG.id, "dispatch")
    seq = (await h.query(TicketWorkflow.get_state)).seq
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=ENG2.id))  # still active: ignored
    await until(h, lambda s: s.seq > seq and not s.pending_departures, "departure ignored")
    DEPARTED.add(ENG.id)
    HOLDING[ENG.id] = [h.id.removeprefix("ticket-")]
    leaver = await env.client.start_workflow(
        PersonLeftWorkflow.run, PersonLeftInput(person_id=ENG.id, reason="left the company"),
        id=f"person-left-{ENG.id}-{uuid.uuid4().hex[:6]}", task_queue=queue,
    )  # fmt: skip
    await leaver.result()
    await until(h, lambda s: s.nodes["diagnose"].assignee == ENG2.id, "hand-over")
    await work(h, ENG2, "diagnose", claim=False, diagnosis="thermostat loose", parts_needed=False)
    s = await work(h, ENG2, "repair", repair_cost=cny("380.00"), minutes_worked="45")
    assert s.active == ["confirm"] and s.nodes["settle"].outcome == "settled", (s.active, s.nodes["settle"].outcome)
    await event(h, "customer_confirmed", AGENT)  # the requester confirms for the customer
    await finish(h)
    return {"person_left": (h.id, None), "person_left_workflow": (leaver.id, None)}


async def approver_left(env: WorkflowEnvironment, queue: str) -> str:
    """discount_approval: the manager delegates the vote; the delegate is deactivated (person_left
    signal, the directory shows them inactive) and the seat goes back to the manager, who
    approves → gateway → end → close."""
    h = await open_ticket(env, queue, "discount_approval", customer="ACME Trading", amount=cny("5000.00"),
                          justification="three-year framework order")  # fmt: skip
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers == [MANAGER.id], "approvers")
    await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=MANAGER, to=SUPERVISOR.id, reason="travelling"))
    DEPARTED.add(SUPERVISOR.id)
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=SUPERVISOR.id, reason="left the company"))
    await until(h, lambda s: s.nodes["approve"].approvers == [MANAGER.id] and not s.pending_departures, "seat back")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER, reason="back in the office"))
    return await finish(h)


async def discount_rejection_loop(env: WorkflowEnvironment, queue: str) -> str:
    """discount_approval's rejection loop: the manager approves, finance rejects → the requester
    revises (a task assigned to them; the frozen amount is free again) → the approval starts
    over with three levels (manager, finance, general manager) → contract attached → gateway →
    legal review approval → end → close."""
    h = await open_ticket(env, queue, "discount_approval", customer="ACME Trading", amount=cny("50000.00"),
                          justification="three-year framework order")  # fmt: skip
    await until(h, lambda s: s.nodes.get("approve") and s.nodes["approve"].approvers, "approvers")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER))
    await h.execute_update(TicketWorkflow.reject, RejectInput(actor=FINANCE, reason="margin too thin"))
    await work(h, AGENT, "revise", claim=False, amount=cny("150000.00"), justification="five-year order",
               contract_attached=True)  # fmt: skip
    for approver in (MANAGER, FINANCE, GM):
        await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=approver))
    await until(h, lambda s: "legal_review" in s.active and s.nodes["legal_review"].approvers, "legal review")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=LEGAL, reason="contract reviewed"))
    return await finish(h)


async def approval_deadline(env: WorkflowEnvironment, queue: str) -> str:
    """discount_approval with level deadlines of seconds: nobody decides the manager level in
    time, so it escalates to the approver's manager (the general manager joins and approves);
    the finance level's deadline passes and it approves by itself → end → close."""
    levels = preset("discount_approval").spec.node("approve").levels
    timed = [
        levels[0].model_copy(update={"timeout": timedelta(seconds=2)}),  # on_timeout: escalate
        levels[1].model_copy(update={"timeout": timedelta(seconds=2), "on_timeout": "approve"}),
        levels[2],
    ]
    template = variant("discount_approval", {"approve": {"levels": timed}})
    h = await open_ticket(env, queue, "discount_approval", template, customer="ACME Trading", amount=cny("50000.00"),
                          justification="three-year framework order")  # fmt: skip
    await until(h, lambda s: s.nodes.get("approve") and GM.id in s.nodes["approve"].approvers, "escalation", 15)
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=GM, reason="overdue: approved"))
    await until(h, lambda s: s.status == "resolved", "finance deadline", 15)
    return await finish(h)


async def sla_escalation(env: WorkflowEnvironment, queue: str) -> str:
    """SLA milestones in seconds (general with a dispatched task, then a timer-only wait and a
    notify node): nobody starts the work, so both clocks fire their reminders (50 %, 80 %), the
    breach (re-dispatch to someone else, the management chain looked up) and the escalations
    to manager (150 %) and director (200 %); then the work is done → wait → notify → end → close."""
    template = variant(
        "general",
        nodes={"work": {
            # No two milestones at the same moment (response: 1.5 2.4 3 4.5 6 s; resolution: 4 6.4 8 12 16 s):
            # coinciding ones can record a history that does not replay (a local activity result and
            # a timer that fired meanwhile reach the workflow in another order on replay).
            "sla": SLA(response=timedelta(seconds=3), resolution=timedelta(seconds=8)),
            "dispatch": DispatchSpec(strategy="best_score", skills={"equipment_repair": 1}),
            "next": "cool_off",
        }},
        add=(
            WaitNode(id="cool_off", name="Let the machine run a moment", duration=timedelta(seconds=1), next="tell"),
            NotifyNode(id="tell", event="resolved", recipients=["requester", "assignee", "role:supervisor"],
                       next="done"),
        ),
    )  # fmt: skip
    h = await open_ticket(env, queue, "general", template, priority=Priority.NORMAL)
    await until(h, lambda s: s.nodes.get("work") and s.nodes["work"].assignee == ENG.id, "dispatch")
    s = await until(h, lambda s: s.sla.clocks["resolution"].milestone == 5, "every milestone", 30)
    who = PEOPLE[s.nodes["work"].assignee]
    await h.execute_update(TicketWorkflow.start, StartInput(actor=who))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=who, resolution="compressor reset"))
    return await finish(h)


async def preset_complaint(env: WorkflowEnvironment, queue: str) -> str:
    """complaint: a VIP customer → gateway → the supervisor's task; request_info pauses the SLA
    until the customer's ``customer_reply`` (through the channel gateway) resumes it;
    change_priority to urgent gives the clocks the new targets; resolved with a compensation
    → close."""
    h = await open_ticket(env, queue, "complaint", priority=Priority.NORMAL, customer_tier="vip",
                          complaint="The technician was two hours late and rude")  # fmt: skip
    await until(h, lambda s: "supervisor" in s.active, "routing")
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=SUPERVISOR))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=SUPERVISOR))
    ask = RequestInfoInput(actor=SUPERVISOR, question="Which visit was it?")
    await h.execute_update(TicketWorkflow.request_info, ask)
    await until(h, lambda s: s.sla.clocks["resolution"].running_since is None, "SLA paused")
    await event(h, "customer_reply", CUSTOMER, "The visit on Monday morning")
    await until(h, lambda s: s.sla.clocks["resolution"].running_since is not None, "SLA resumed")
    change = ChangePriorityInput(actor=SUPERVISOR, priority=Priority.URGENT, reason="posted on social media")
    await h.execute_update(TicketWorkflow.change_priority, change)
    await h.execute_update(
        TicketWorkflow.resolve,
        ResolveInput(
            actor=SUPERVISOR, fields={"compensation": cny("200.00")}, resolution="apologised; 200 CNY voucher"
        ),
    )
    return await finish(h)


async def preset_ecommerce_return(env: WorkflowEnvironment, queue: str) -> str:
    """ecommerce_return: register → quality check → gateway (pass) → parallel: warehouse,
    logistics and finance each do their task → join all → end → close."""
    h = await open_ticket(env, queue, "ecommerce_return", order_no="EC-20261207-0007", return_reason="damaged",
                          refund_amount=cny("199.00"))  # fmt: skip
    await work(h, AGENT, "register", items="1 × electric kettle")
    await work(h, QC, "quality_check", qc_result="pass")
    await work(h, FINANCE, "refund", refund_reference="RF-88421")
    await work(h, LOGISTICS, "pickup", tracking_no="SF1234567890")
    await work(h, WAREHOUSE, "restock", restocked=True)
    return await finish(h)


async def installation_offer_expires(env: WorkflowEnvironment, queue: str) -> str:
    """installation with a grab-pool window of seconds: schedule → the install is offered to
    the top three; nobody claims in the window, so the best score gets it → installed →
    ``customer_accepted`` from the ERP gateway ends the acceptance wait → close."""
    dispatch = preset("installation").spec.node("install").dispatch
    pool = dispatch.model_copy(update={"offer_window": timedelta(seconds=3)})
    template = variant("installation", {"install": {"dispatch": pool}})
    h = await open_ticket(env, queue, "installation", template, order_no="ERP-55012", product="Heat pump HP-9",
                          address={**SITE, "address": "88 Century Ave, Pudong"})  # fmt: skip
    await work(h, AGENT, "schedule", appointment="2026-12-09T14:00:00+08:00")
    s = await until(h, lambda s: s.nodes.get("install") and s.nodes["install"].assignee, "offer expiry", 15)
    who = PEOPLE[s.nodes["install"].assignee]
    await work(h, who, "install", claim=False, serial_no="HP9-000731")
    await event(h, "customer_accepted", ERP, "accepted in the app")
    return await finish(h)


async def preset_installation(env: WorkflowEnvironment, queue: str) -> str:
    """installation as published: schedule → the install is offered to the top three (grab
    pool) and the second offeree claims it within the window → installed → the requester
    reports the customer's acceptance (``customer_accepted``) → close."""
    h = await open_ticket(env, queue, "installation", order_no="ERP-55013", product="Heat pump HP-9",
                          address={**SITE, "address": "88 Century Ave, Pudong"})  # fmt: skip
    await work(h, AGENT, "schedule", appointment="2026-12-10T09:30:00+08:00")
    s = await until(h, lambda s: "install" in s.nodes and s.nodes["install"].offer_until is not None, "offer")
    second = PEOPLE[s.nodes["install"].candidates.removeprefix("offer:").split(",")[1]]
    await work(h, second, "install", serial_no="HP9-000732")
    await event(h, "customer_accepted", AGENT, "accepted on the phone")
    return await finish(h)


async def trial_class_no_show(env: WorkflowEnvironment, queue: str) -> str:
    """trial_class whose attendance wait lasts seconds: enquiry → booking → nobody reports
    attendance, the wait times out → follow-up (lost) → gateway → the ``lost`` end → close."""
    template = variant("trial_class", {"attend": {"duration": timedelta(seconds=2)}})
    h = await open_ticket(env, queue, "trial_class", template, by=SALES, student_name="Lin Xiaoyu",
                          phone="+86 138 0013 8000")  # fmt: skip
    await work(h, SALES, "enquiry", course="piano")
    await work(h, SALES, "book", trial_at="2026-12-12T10:00:00+08:00")
    await work(h, SALES, "follow_up", outcome="lost", lost_reason="no show, not answering calls")
    return await finish(h, by=SALES)


async def continue_as_new(env: WorkflowEnvironment, queue: str) -> dict[str, tuple[str, str | None]]:
    """trial_class (with SLA targets, and the follow-up's own) and a small ``history_limit``:
    comments during the attendance wait grow the history until the run hands over (a comment
    that meets the hand-over is refused as moving); the next run (its own history) resumes the
    wait and the resolution clock, takes ``trial_attended``, opens the follow-up with its own
    clocks (enrolled) → gateway → end → close."""
    follow_up = {"sla": SLA(response=timedelta(hours=4), resolution=timedelta(days=1))}  # the node's own clocks
    template = variant(
        "trial_class",
        {"follow_up": follow_up},
        sla={Priority.NORMAL: SLA(response=timedelta(hours=1), resolution=timedelta(days=3))},
    )
    h = await open_ticket(env, queue, "trial_class", template, by=SALES, priority=Priority.NORMAL, history_limit=150,
                          student_name="Lin Xiaoyu", phone="+86 138 0013 8000")  # fmt: skip
    await work(h, SALES, "enquiry", course="coding")
    await work(h, SALES, "book", trial_at="2026-12-12T10:00:00+08:00")
    first = h.result_run_id
    for i in range(100):
        try:
            await h.execute_update(TicketWorkflow.comment, CommentInput(actor=SALES, text=f"reminder call {i + 1}"))
        except WorkflowUpdateFailedError as err:
            assert getattr(err.cause, "type", None) == MOVING, err.cause
            break
        if (await h.describe()).run_id != first:
            break
    for _ in range(200):
        if (await h.describe()).run_id != first:
            break
        await asyncio.sleep(0.05)
    handed_over = await env.client.get_workflow_handle(h.id, run_id=first).fetch_history()
    nxt = handed_over.events[-1].workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    assert nxt, "the first run did not continue as new"
    await event(h, "trial_attended", SALES, "came with her mother")
    await work(h, SALES, "follow_up", outcome="enrolled")
    await finish(h, by=SALES)
    return {"continue_as_new": (h.id, first), "continue_as_new_next_run": (h.id, nxt)}


async def delegate_and_return(env: WorkflowEnvironment, queue: str) -> str:
    """general: the engineer claims and starts the work, delegates it to a colleague, who
    returns it; the engineer resolves → close."""
    h = await open_ticket(env, queue, "general", priority=Priority.NORMAL)
    await until(h, lambda s: "work" in s.active, "task")
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=ENG, to=ENG2.id, reason="closer to the site"))
    await h.execute_update(TicketWorkflow.return_, ReturnInput(actor=ENG2, reason="needs the electrical skill"))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="breaker replaced"))
    return await finish(h)


Scenario = Callable[[WorkflowEnvironment, str], Any]
SCENARIOS: dict[str, Scenario] = {
    "ticket_lifecycle": lifecycle,
    "signed_discount": signed_discount,
    "preset_equipment_repair": preset_equipment_repair,
    "cancel_releases_parts": cancel_releases_parts,
    "person_left": person_left,
    "approver_left": approver_left,
    "discount_rejection_loop": discount_rejection_loop,
    "approval_deadline": approval_deadline,
    "sla_escalation": sla_escalation,
    "preset_complaint": preset_complaint,
    "preset_ecommerce_return": preset_ecommerce_return,
    "preset_installation": preset_installation,
    "installation_offer_expires": installation_offer_expires,
    "trial_class_no_show": trial_class_no_show,
    "continue_as_new": continue_as_new,
    "delegate_and_return": delegate_and_return,
}
# Recorded before actions were signed: recording it again would lose what it proves.
NEVER_AGAIN = {"ticket_lifecycle"}


async def main(names: list[str]) -> None:
    if refused := NEVER_AGAIN & set(names):
        sys.exit(f"not recording {', '.join(sorted(refused))}: recorded by an earlier release, it must stay as it is")
    if unknown := set(names) - set(SCENARIOS):
        sys.exit(f"unknown scenarios {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.prefix) / "bin" / "temporal"),
        search_attributes=attrs.ALL,
    )
    key = b"history-recording-key-" + uuid.uuid4().hex.encode()
    signing.install_keys({"record": key})
    env._client = signing_client(env.client, "record", key)  # type: ignore[attr-defined]
    async with env:
        for name in names:
            reset()
            queue = f"record-{uuid.uuid4().hex[:6]}"
            async with Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
                recorded = await SCENARIOS[name](env, queue)
            runs = recorded if isinstance(recorded, dict) else {name: (recorded, None)}
            for history_name, (wf_id, run_id) in runs.items():
                history = await env.client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
                (HERE / f"{history_name}.json").write_text(history.to_json())
                print(f"wrote {HERE / f'{history_name}.json'} ({len(history.events)} events)")


if __name__ == "__main__":
    if len(sys.argv) < 2:  # recording overwrites what an earlier release recorded: only by name
        sys.exit("usage: python -m tests.histories.record <scenario>...\nscenarios: " + ", ".join(SCENARIOS))
    asyncio.run(main(sys.argv[1:]))
    # The SDK's Rust threads may outlive the event loop and abort the interpreter's teardown
    # (temporalio/sdk-python#300): everything is written by now, so skip the teardown.
    sys.stdout.flush()
    os._exit(0)
