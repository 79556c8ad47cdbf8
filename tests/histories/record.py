"""Record workflow histories for the replay test (tests/workflows/test_replay.py).

``python -m tests.histories.record --corpus`` records the replay corpus against today's code:
every scenario of ``CORPUS`` into ``tests/histories/corpus/<history>.json`` — every preset of
``templates/`` through every branch (gateway targets, approvals approved, rejected and decided at
their deadline, parallel joins, waits answered and timed out, SLA milestones, continue-as-new in
a wait, an approval and a parallel, a leaver's hand-over, settlement, stock, child tickets,
surveys answered and expired, check-in/out, a merge, follow-ups and maintenance plans), and every
workflow type a worker runs. tests/workflows/test_corpus.py checks that coverage from the
recorded events. It takes about a minute; run it by hand after a deliberate change to a
workflow, before the release (docs/upgrading.md): ``--corpus <scenario>...`` records some again;
a history no scenario records any more is removed.

``python -m tests.histories.record <scenario>...`` records ``SCENARIOS`` into
``tests/histories/<name>.json``: the histories earlier releases recorded, which prove tickets of
those releases still replay. Never re-record them by accident (there is no "record everything"
here: each name overwrites a history on purpose; ``ticket_lifecycle`` was recorded before
actions were signed and is never recorded again).

Both run the scenarios one after the other on a real dev server and one worker (versioned, and
its build made current, when the workflow types declare a versioning behaviour). The activities
are mocks registered under the real activity names (projection, notifications, directory,
dispatch, inventory, settlement, purchasing, children, intake, schedules, surveys) that answer
with realistic payloads from a small in-memory world, so the histories hold what a real worker
would have recorded; schedules are real Temporal Schedules. Each scenario's docstring says what
it shows. Timers: the dev server runs in real time, so scenarios that wait for an SLA milestone,
an offer window, an approval deadline, a wait's duration or a survey's reminder and expiry use a
copy of the preset (``variant``) whose durations are seconds, with no calendar (24x7).
"""

import asyncio
import itertools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import temporalio.api.workflowservice.v1 as wsv1
from temporalio import activity, workflow
from temporalio.api.enums.v1 import RoutingConfigUpdateState
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkerDeploymentVersion
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker, WorkerDeploymentConfig

from activities.purchasing import PurchaseRequestIn, PurchaseRequestOut
from activities.schedules import create_schedule, follow_up_id
from activities.settlement import budget_check, price_ticket
from activities.stock_alerts import LowStockCheck, LowStockResult
from api.signing import seal, signing_client, update_id
from domain import signing
from domain.ids import ticket_id_for_key
from domain.lifecycle import TERMINAL
from models import demo
from models import search_attributes as attrs
from models.children import CancelChildren, CancelledChildren, ChildIds, ChildStatuses, PrepareChild
from models.demo_pricing import DEMO_PRICING
from models.directory import PeopleQuery, PeopleResult
from models.dispatch import DispatchCall, DispatchDecision, DispatchOutcome, DispatchRequest, ScoredCandidate, Strategy
from models.intake import OpenedTicket, OpenTicket
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
from models.notifications import Channel, DeliveryOutcome, NotifyResult
from models.schedule_tables import MaintenanceSchedule
from models.schedules import FollowUp, FollowUpInput, FollowUpScheduled, ScheduleKind
from models.settlement import SettleInput, SettleResult
from models.survey_spec import QuestionKind, SurveyQuestion, SurveySpec
from models.surveys import (
    ANSWER_UPDATE,
    SIGNED_AS,
    LinkFollowUp,
    RecordAnswer,
    SendSurvey,
    SurveyAnswerInput,
    SurveyDelivery,
    SurveyMark,
    SurveySent,
    SurveyState,
    SurveyStatus,
)
from models.surveys import workflow_id as survey_id
from models.template import SLA, DispatchSpec, NotifyNode, TemplateSpec, TemplateVersion, WaitNode
from models.ticket import (
    SYSTEM,
    ActorRef,
    ApproveInput,
    AssignInput,
    CancelInput,
    ChangePriorityInput,
    CheckInInput,
    CheckOutInput,
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
    TicketResult,
    TicketState,
    TicketStatus,
)
from tests.support import preset
from workflows.person_left import PersonLeftWorkflow
from workflows.registry import WORKFLOWS
from workflows.survey import SurveyWorkflow
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
SETTLE_FAILURES: list[str] = []  # settlement.settle fails (non-retryable) once per entry: the reason
WAREHOUSE_CODE = "WH-SH-PD"
ENGINEERS = ["eng-li", "eng-zhao", "eng-e02"]  # the east engineers dispatch ranks, best first
_ids = itertools.count(9001)
# The signing key of this recording (the API's part: surveys' answers are sealed with it as well).
KEY_ID, KEY = "record", b"history-recording-key-" + uuid.uuid4().hex.encode()


def reset() -> None:
    DEPARTED.clear()
    HOLDING.clear()
    STOCK.clear()
    RESERVED.clear()
    SETTLE_FAILURES.clear()


# --- mocked activities, under the real names ---


@activity.defn(name="notify.send")
async def send(payload: dict) -> NotifyResult:
    """Sent by SMS to everyone (a ticket's notifications ignore the answer; a survey keeps it)."""
    sent = [DeliveryOutcome(channel=Channel.SMS, recipient=r, status="sent", attempts=1) for r in payload["recipients"]]
    return NotifyResult(dedup_key=payload["dedup_key"], channels=[Channel.SMS], deliveries=sent, sent=len(sent))


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
    """Priced by the real (pure) engine with the region's demo rules; not stored. Fails for
    good (as rules missing for the region would) while ``SETTLE_FAILURES`` holds a reason."""
    if SETTLE_FAILURES:
        raise ApplicationError(SETTLE_FAILURES.pop(0), type="Settlement:NoRules", non_retryable=True)
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


def _ticket(handle_id: str) -> WorkflowHandle:
    return activity.client().get_workflow_handle(handle_id, result_type=TicketResult)


async def _status(ticket_id: str) -> TicketStatus:
    """Where a ticket stands: its workflow's state (the read model's answer, without a read model)."""
    state: TicketState = await _ticket(f"ticket-{ticket_id}").query(TicketWorkflow.get_state)
    return state.status


@activity.defn(name="children.prepare")
async def prepare_child(inp: PrepareChild) -> TicketInput:
    """As intake would: the child's preset (latest version), the parent's region, values and customer."""
    template = preset(inp.ticket_type)
    defaults = {f.name: f.default for f in template.spec.fields if f.default is not None}
    return TicketInput(
        ticket_id=ticket_id_for_key(inp.key), ticket_type=inp.ticket_type, region=inp.region, priority=inp.priority,
        title=inp.title, description=inp.description, channel="system", reporter=inp.reporter,
        fields={**defaults, **inp.fields}, customer_id=inp.customer_id, parent_id=inp.parent_id, created_by=SYSTEM,
        created_at=datetime.now(UTC), template=template,
    )  # fmt: skip


@activity.defn(name="children.status")
async def child_statuses(inp: ChildIds) -> ChildStatuses:
    return ChildStatuses(statuses={cid: await _status(cid) for cid in inp.ids})


@activity.defn(name="children.cancel")
async def cancel_children(inp: CancelChildren) -> CancelledChildren:
    """A signed ``cancel`` as the system to each child still open (the recording's client signs it)."""
    out = CancelledChildren()
    for cid in inp.ids:
        status = await _status(cid)
        if status in TERMINAL or status == TicketStatus.RESOLVED:
            out.ended[cid] = status
            continue
        cancel = CancelInput(actor=SYSTEM, reason=inp.reason)
        await _ticket(f"ticket-{cid}").execute_update(TicketWorkflow.cancel, cancel, id=f"parent-cancel:{cid}")
        out.cancelled.append(cid)
    return out


@activity.defn(name="intake.open_ticket")
async def open_from_worker(req: OpenTicket) -> OpenedTicket:
    """Open the ticket (its preset, the key's id) and start its workflow on this task queue."""
    template = preset(req.ticket_type)
    ticket_id = ticket_id_for_key(req.key)
    inp = TicketInput(
        ticket_id=ticket_id, ticket_type=req.ticket_type, region=req.region, title=req.title,
        priority=req.priority or template.spec.default_priority, description=req.description, channel=req.channel,
        fields=req.fields, customer_id=req.customer_id, asset_id=req.asset_id, external_ref=req.external_ref,
        created_by=PEOPLE.get(req.created_by, SYSTEM), created_at=datetime.now(UTC), template=template,
    )  # fmt: skip
    try:
        await activity.client().start_workflow(
            TicketWorkflow.run, inp, id=f"ticket-{ticket_id}", task_queue=activity.info().task_queue
        )
    except WorkflowAlreadyStartedError:
        return OpenedTicket(ticket_id=ticket_id, new=False)
    return OpenedTicket(ticket_id=ticket_id, new=True)


@activity.defn(name="schedules.follow_up")
async def schedule_follow_up(inp: FollowUpInput) -> FollowUpScheduled:
    """The real Temporal Schedule (``activities.schedules.create_schedule``) of a row kept in memory."""
    spec, now = inp.follow_up, datetime.now(UTC)
    due = (inp.at + spec.delay).astimezone(UTC).replace(microsecond=0)
    row = MaintenanceSchedule(
        id=follow_up_id(inp.ticket_id, spec.name), kind=ScheduleKind.FOLLOW_UP.value, region="east",
        ticket_type=spec.ticket_type, title=spec.title, due_at=due, source_ticket=inp.ticket_id,
        ticket={"description": f"Follow-up {spec.name!r} of ticket {inp.ticket_id}", "external_ref": inp.ticket_id,
                "key": f"follow-up:{inp.ticket_id}:{spec.name}"},
        state="active", created_by=SYSTEM.id, created_at=now, updated_at=now,
    )  # fmt: skip
    new = await create_schedule(activity.client(), row, activity.info().task_queue, fire_now=due <= now)
    return FollowUpScheduled(schedule_id=row.id, due_at=due, new=new)


@activity.defn(name="survey.send")
async def survey_send(inp: SendSurvey) -> SurveySent:
    """The customer has a phone and consented to SMS."""
    return SurveySent(
        recipients=["+86 138 0013 8000"], delivery="asking: sms", language="zh", team="field-east",
        invite=f"How did we do on {inp.input.ticket_id}? Rate us 1-5.", reminder="A reminder: how did we do?",
    )  # fmt: skip


@activity.defn(name="survey.delivered")
async def survey_delivered(inp: SurveyDelivery) -> None:
    pass


@activity.defn(name="survey.remind")
async def survey_remind(inp: SurveyMark) -> None:
    pass


@activity.defn(name="survey.expire")
async def survey_expire(inp: SurveyMark) -> None:
    pass


@activity.defn(name="survey.record_answer")
async def survey_record_answer(inp: RecordAnswer) -> None:
    pass


@activity.defn(name="survey.link_follow_up")
async def survey_link_follow_up(inp: LinkFollowUp) -> None:
    pass


ACTIVITIES = [send, record, resolve_people, is_active, held_tickets, decide, reserve, consume, release,
              announce_low_stock, settle, create_request, prepare_child, child_statuses, cancel_children,
              open_from_worker, schedule_follow_up, survey_send, survey_delivered, survey_remind, survey_expire,
              survey_record_answer, survey_link_follow_up]  # fmt: skip


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
    """Start a ticket of region east on the preset ``key`` (or ``template``) with these form values,
    created now (its SLA clocks run from ``created_at``: a fixed date would one day lie in the past
    and breach every clock at once)."""
    template = template or preset(key)
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(), ticket_type=key, region="east",
        priority=priority or template.spec.default_priority, title=f"{template.spec.name} (recorded history)",
        created_by=by, created_at=datetime.now(UTC), template=template, fields=fields,
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


async def hand_over(env: WorkflowEnvironment, h: WorkflowHandle, who: ActorRef, text: str) -> tuple[str, str]:
    """Comments grow the history until the run continues as new (a comment that meets the
    hand-over is refused as moving): (the run that handed over, the next run)."""
    first = (await h.describe()).run_id
    assert first is not None
    for i in range(200):
        try:
            await h.execute_update(TicketWorkflow.comment, CommentInput(actor=who, text=f"{text} {i + 1}"))
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
    return first, nxt


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


async def lifecycle(env: WorkflowEnvironment, queue: str, created_at: datetime | None = None) -> str:
    """general before actions were signed: claim, a refused close, start, comment, resolve,
    reopen, assign, resolve, close. Kept as recorded then (``NEVER_AGAIN``), on 2026-11-24."""
    inp = TicketInput(
        ticket_id="THISTORY" + uuid.uuid4().hex[:6].upper(),
        ticket_type="general",
        template=preset("general"),
        region="east",
        priority=Priority.HIGH,
        title="Compressor #3 overheating",
        created_by=AGENT,
        created_at=created_at or datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
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


async def sla_coinciding_milestones(env: WorkflowEnvironment, queue: str) -> str:
    """Two clocks whose milestones coincide (response 4 s, resolution 8 s: the response breach
    and the resolution's 50 % reminder at 4 s, its escalation and the resolution breach at 8 s):
    the moment that recorded histories which did not replay before the ``sla-*-caught-up``
    patches (tests/histories/races/). Nobody starts the work until every milestone fired."""
    template = variant(
        "general",
        nodes={"work": {
            "sla": SLA(response=timedelta(seconds=4), resolution=timedelta(seconds=8)),
            "dispatch": DispatchSpec(strategy="best_score", skills={"equipment_repair": 1}),
            "next": "done",
        }},
    )  # fmt: skip
    h = await open_ticket(env, queue, "general", template, priority=Priority.NORMAL)
    await until(h, lambda s: s.nodes.get("work") and s.nodes["work"].assignee == ENG.id, "dispatch")
    s = await until(h, lambda s: s.sla.clocks["resolution"].milestone == 5, "every milestone", 40)
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
    pool) and the second offeree claims it within the window → installed → the customer
    accepts through the channel gateway (``customer_accepted``; the requester who scheduled the
    visit did some of the work, so they no longer speak for the customer) → close."""
    h = await open_ticket(env, queue, "installation", order_no="ERP-55013", product="Heat pump HP-9",
                          address={**SITE, "address": "88 Century Ave, Pudong"})  # fmt: skip
    await work(h, AGENT, "schedule", appointment="2026-12-10T09:30:00+08:00")
    s = await until(h, lambda s: "install" in s.nodes and s.nodes["install"].offer_until is not None, "offer")
    second = PEOPLE[s.nodes["install"].offers[1]]
    await work(h, second, "install", serial_no="HP9-000732")
    await event(h, "customer_accepted", CUSTOMER, "accepted in the app")
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
    first, nxt = await hand_over(env, h, SALES, "reminder call")
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


# --- the replay corpus (python -m tests.histories.record --corpus): every preset through every branch ---

Histories = dict[str, tuple[str, str | None]]  # history name → (workflow id, run id; None: the last run)
SITE_A = {"lat": 31.2304, "lon": 121.4737, "address": "88 Century Ave, Pudong"}
SITE_B = {"lat": 31.1955, "lon": 121.4365, "address": "1 Xujiahui Rd"}
NEAR_SITE = {"lat": 31.2307, "lon": 121.4741}  # some 50 m from SITE (REPAIR's site)
ON_TIME = SurveyQuestion(id="on_time", text="Did the engineer come when we said?", kind=QuestionKind.YES_NO)


def quick_survey(after: str, expires: bool = False) -> SurveySpec:
    """The template's survey in seconds: reminded after 2 s, expiring after 3 s (1 s and 2 s for
    one that is left to expire)."""
    remind, expire = (1, 2) if expires else (2, 3)
    return SurveySpec.model_validate(
        {"after": after, "questions": [ON_TIME], "reminder_after": timedelta(seconds=remind),
         "expires_after": timedelta(seconds=expire)}
    )  # fmt: skip


def ticket_of(h: WorkflowHandle) -> str:
    return h.id.removeprefix("ticket-")


def ticket_handle(env: WorkflowEnvironment, ticket_id: str) -> WorkflowHandle:
    return env.client.get_workflow_handle(f"ticket-{ticket_id}", result_type=TicketResult)


async def survey(env: WorkflowEnvironment, ticket_id: str, check: Callable[[SurveyState], Any], what: str,
                 timeout: float = 30) -> SurveyState:  # fmt: skip
    """Poll the ticket's survey (started by the ticket, so perhaps not yet) until ``check`` holds."""
    h = env.client.get_workflow_handle(survey_id(ticket_id))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            state: SurveyState | None = await h.query(SurveyWorkflow.get_state)
        except RPCError:
            state = None  # not started yet
        if state is not None and check(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"survey of {ticket_id}: no {what} ({state})")
        await asyncio.sleep(0.05)


async def answer(env: WorkflowEnvironment, ticket_id: str, who: ActorRef, rating: int, comment: str,
                 **answers: Any) -> SurveyState:  # fmt: skip
    """The customer's answer as the API sends it: sealed under ``survey.answer``."""
    await survey(env, ticket_id, lambda s: bool(s.delivery), "survey sent")
    unsigned = SurveyAnswerInput(actor=who, rating=rating, comment=comment, answers=answers, via=f"channel:{who.id}")
    sealed = seal(unsigned, ticket_id, SIGNED_AS, KEY_ID, KEY, datetime.now(UTC) + timedelta(minutes=5))
    h = env.client.get_workflow_handle(survey_id(ticket_id))
    return await h.execute_update(ANSWER_UPDATE, sealed, id=update_id(ANSWER_UPDATE, sealed), result_type=SurveyState)


async def survey_ended(env: WorkflowEnvironment, ticket_id: str) -> SurveyState:
    return await env.client.get_workflow_handle(survey_id(ticket_id), result_type=SurveyState).result()


async def fired(env: WorkflowEnvironment, schedule_id: str, timeout: float = 30) -> tuple[str, str]:
    """The first run a schedule started, once it completed: (workflow id, run id)."""
    handle = env.client.get_schedule_handle(schedule_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while not (desc := await handle.describe()).info.recent_actions:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"schedule {schedule_id} did not fire")
        await asyncio.sleep(0.1)
    action = desc.info.recent_actions[0].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    await env.client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id).result()
    await handle.delete()
    return action.workflow_id, action.first_execution_run_id


async def install_site(env: WorkflowEnvironment, child_id: str, serial: str) -> TicketState:
    """An installation child ticket: scheduled by the agent, installed by the best-placed
    engineer offered it, accepted by the customer (through the ERP gateway), closed."""
    h = ticket_handle(env, child_id)
    await work(h, AGENT, "schedule", appointment="2026-12-14T09:00:00+08:00")
    s = await until(h, lambda s: "install" in s.active and bool(s.nodes["install"].offers), "offer")
    await work(h, PEOPLE[s.nodes["install"].offers[0]], "install", serial_no=serial)
    await event(h, "customer_accepted", ERP, "accepted on site")
    await finish(h)
    return (await h.result()).state


async def general_lifecycle(env: WorkflowEnvironment, queue: str) -> str:
    """The ``ticket_lifecycle`` walk on today's code (signed, created now): claim, a refused
    close, start, comment, resolve, reopen, assign, resolve, close."""
    return await lifecycle(env, queue, datetime.now(UTC))


async def merge(env: WorkflowEnvironment, queue: str) -> Histories:
    """Two general tickets about one machine. The master's engineer asks the customer (SLA
    paused); a supervisor merges the duplicate into it (the duplicate's ``cancel`` with the
    reason ``merged into <master>``, request id ``merge:<master>``, as POST /tickets/{id}/merge
    sends it); the customer's reply sent on the duplicate is forwarded to the master as its
    ``customer_reply``; the master is resolved → close."""
    master = await open_ticket(env, queue, "general", priority=Priority.NORMAL)
    duplicate = await open_ticket(env, queue, "general", priority=Priority.NORMAL)
    await until(master, lambda s: "work" in s.active, "task")
    await master.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await master.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    ask = RequestInfoInput(actor=ENG, question="Which compressor: hall A or hall B?")
    await master.execute_update(TicketWorkflow.request_info, ask)
    await until(duplicate, lambda s: "work" in s.active, "duplicate's task")
    into = ticket_of(master)
    merged = CancelInput(actor=SUPERVISOR, reason=f"merged into {into}")
    await duplicate.execute_update(TicketWorkflow.cancel, merged, id=f"merge:{into}")
    assert (await duplicate.result()).state.status == TicketStatus.CANCELLED
    await event(master, "customer_reply", CUSTOMER, "Hall B (sent on the duplicate, forwarded)")
    await master.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="hall B relay replaced"))
    await finish(master)
    return {"merge_duplicate": (duplicate.id, None), "merge_master": (master.id, None)}


async def approval_deadline_rejects(env: WorkflowEnvironment, queue: str) -> str:
    """discount_approval whose manager level decides by itself after 2 s (``on_timeout:
    reject``): nobody decides in time → rejected → the requester revises → the approval opens
    again and the manager approves in time → gateway → end → close."""
    levels = preset("discount_approval").spec.node("approve").levels
    timed = [levels[0].model_copy(update={"timeout": timedelta(seconds=2), "on_timeout": "reject"}), *levels[1:]]
    template = variant("discount_approval", {"approve": {"levels": timed}})
    h = await open_ticket(env, queue, "discount_approval", template, customer="ACME Trading", amount=cny("4000.00"),
                          justification="first order of the year")  # fmt: skip
    await until(h, lambda s: "revise" in s.active, "the deadline's rejection", 15)
    await work(h, AGENT, "revise", claim=False, justification="first order of the year; pays in advance")
    await until(h, lambda s: "approve" in s.active and s.nodes["approve"].approvers == [MANAGER.id], "approvers")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER, reason="in time this round"))
    return await finish(h)


async def discount_legal_rejects(env: WorkflowEnvironment, queue: str) -> str:
    """discount_approval with a contract attached: the manager approves → contract gateway →
    legal rejects the contract → the requester revises (no contract after all) → the manager
    approves again → gateway (default) → end → close."""
    h = await open_ticket(env, queue, "discount_approval", customer="ACME Trading", amount=cny("8000.00"),
                          justification="two-year order", contract_attached=True)  # fmt: skip
    await until(h, lambda s: "approve" in s.active and s.nodes["approve"].approvers == [MANAGER.id], "approvers")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER))
    await until(h, lambda s: "legal_review" in s.active and bool(s.nodes["legal_review"].approvers), "legal review")
    await h.execute_update(TicketWorkflow.reject, RejectInput(actor=LEGAL, reason="unlimited liability clause"))
    await work(h, AGENT, "revise", claim=False, contract_attached=False, justification="two-year order, no contract")
    await until(h, lambda s: "approve" in s.active and s.nodes["approve"].approvers == [MANAGER.id], "approvers")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER, reason="without the contract"))
    return await finish(h)


async def discount_continue_as_new(env: WorkflowEnvironment, queue: str) -> Histories:
    """discount_approval (manager, then finance with a one-hour deadline) and a small
    ``history_limit``: the manager approves; comments while the finance level waits grow the
    history until the run hands over in the middle of the approval; the next run resumes the
    level (its approvers, votes and deadline) and finance approves → gateway → end → close."""
    levels = preset("discount_approval").spec.node("approve").levels
    timed = [levels[0], levels[1].model_copy(update={"timeout": timedelta(hours=1)}), levels[2]]
    template = variant("discount_approval", {"approve": {"levels": timed}})
    h = await open_ticket(env, queue, "discount_approval", template, history_limit=150, customer="ACME Trading",
                          amount=cny("50000.00"), justification="three-year framework order")  # fmt: skip
    await until(h, lambda s: "approve" in s.active and s.nodes["approve"].approvers == [MANAGER.id], "approvers")
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=MANAGER))
    await until(h, lambda s: s.nodes["approve"].level == 1 and bool(s.nodes["approve"].approvers), "finance level")
    first, nxt = await hand_over(env, h, AGENT, "finance asked again")
    s = await until(h, lambda s: True, "the next run")
    assert s.active == ["approve"] and s.nodes["approve"].level == 1, (s.active, s.nodes["approve"].level)
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=FINANCE, reason="margin fine"))
    await finish(h)
    return {"discount_continue_as_new": (h.id, first), "discount_continue_as_new_next_run": (h.id, nxt)}


async def complaint_survey_answered(env: WorkflowEnvironment, queue: str) -> Histories:
    """complaint (VIP → gateway → the supervisor's task, a compensation) → close → its survey
    (after close, in seconds): the customer answers 2/5 through the channel → the survey opens
    the satisfaction_follow_up ticket (intake.open_ticket), whose supervisor calls back → close;
    the survey ends at its expiry."""
    template = variant("complaint", survey=quick_survey("closed"))
    h = await open_ticket(env, queue, "complaint", template, customer_tier="vip",
                          complaint="The technician never came")  # fmt: skip
    await work(h, SUPERVISOR, "supervisor", compensation=cny("100.00"))
    await finish(h)
    ticket_id = ticket_of(h)
    await answer(env, ticket_id, CUSTOMER, 2, "Still waiting for a call", on_time=False)
    s = await survey(env, ticket_id, lambda s: s.follow_up_ticket is not None, "follow-up ticket")
    assert s.follow_up_ticket is not None
    call_back = ticket_handle(env, s.follow_up_ticket)
    await work(call_back, SUPERVISOR, "call_back", outcome="compensation_offered", notes="apologised; voucher")
    await finish(call_back, by=SUPERVISOR)
    assert (await survey_ended(env, ticket_id)).status == SurveyStatus.ANSWERED
    return {
        "complaint_survey_answered": (h.id, None),
        "survey_answered_low": (survey_id(ticket_id), None),
        "satisfaction_follow_up": (call_back.id, None),
    }


async def complaint_survey_expires(env: WorkflowEnvironment, queue: str) -> Histories:
    """complaint of a regular customer → gateway (default) → the duty agent resolves → close →
    its survey (in seconds) is never answered: reminded, then expired."""
    template = variant("complaint", survey=quick_survey("closed", expires=True))
    h = await open_ticket(env, queue, "complaint", template, customer_tier="regular",
                          complaint="The invoice came twice")  # fmt: skip
    await work(h, AGENT, "duty_agent")
    await finish(h)
    final = await survey_ended(env, ticket_of(h))
    assert final.status == SurveyStatus.EXPIRED and final.reminded_at is not None, final
    return {"complaint_survey_expires": (h.id, None), "survey_expired": (survey_id(ticket_of(h)), None)}


async def ecommerce_return_refused(env: WorkflowEnvironment, queue: str) -> str:
    """ecommerce_return: register → quality check fails → gateway (default) → the agent tells
    the customer → the ``refused`` end → close."""
    h = await open_ticket(env, queue, "ecommerce_return", order_no="EC-20261207-0011", return_reason="changed_mind",
                          refund_amount=cny("89.00"))  # fmt: skip
    await work(h, AGENT, "register", items="1 × tea set (used)")
    await work(h, QC, "quality_check", qc_result="fail")
    await work(h, AGENT, "refuse")
    return await finish(h)


async def ecommerce_return_first_branch(env: WorkflowEnvironment, queue: str) -> str:
    """ecommerce_return whose parallel joins on the first branch (``join: any``): finance
    refunds first → joined, the warehouse's and logistics' tasks are cancelled → end → close."""
    template = variant("ecommerce_return", {"fulfil": {"join": "any"}})
    h = await open_ticket(env, queue, "ecommerce_return", template, order_no="EC-20261207-0012",
                          return_reason="wrong_item", refund_amount=cny("59.00"))  # fmt: skip
    await work(h, AGENT, "register", items="1 × phone case")
    await work(h, QC, "quality_check", qc_result="pass")
    await until(h, lambda s: {"refund", "pickup", "restock"} <= set(s.active), "the three branches")
    await work(h, FINANCE, "refund", refund_reference="RF-88502")
    return await finish(h)


async def ecommerce_return_continue_as_new(env: WorkflowEnvironment, queue: str) -> Histories:
    """ecommerce_return with a small ``history_limit``: the parallel starts and finance refunds;
    comments grow the history until the run hands over in the middle of the parallel; the next
    run resumes the two branches left, logistics and the warehouse finish → join → end → close."""
    h = await open_ticket(env, queue, "ecommerce_return", history_limit=250, order_no="EC-20261207-0013",
                          return_reason="damaged", refund_amount=cny("259.00"))  # fmt: skip
    await work(h, AGENT, "register", items="1 × rice cooker")
    await work(h, QC, "quality_check", qc_result="pass")
    await work(h, FINANCE, "refund", refund_reference="RF-88503")
    first, nxt = await hand_over(env, h, AGENT, "the courier called")
    s = await until(h, lambda s: {"pickup", "restock"} <= set(s.active), "the branches resumed")
    assert "fulfil" in s.active, s.active
    await work(h, LOGISTICS, "pickup", tracking_no="SF1234567999")
    await work(h, WAREHOUSE, "restock", restocked=True)
    await finish(h)
    return {"ecommerce_return_continue_as_new": (h.id, first), "ecommerce_return_continue_as_new_next_run": (h.id, nxt)}


async def equipment_repair_on_site(env: WorkflowEnvironment, queue: str) -> Histories:
    """equipment_repair on today's template with seconds-long waits: diagnosis → gateway →
    reserve_parts (reserved) → the repair with check-in and check-out on site (no minutes on
    the form: the time on site is priced) → consume_parts → settle over budget → the supervisor
    rejects the cost → the repair again (a lower cost) → consume_parts → settle within budget →
    the customer never confirms (the wait times out) → end; the survey (after resolve) is
    answered 5/5; close → the follow-up's schedule fires (ScheduledTicket opens the call back)."""
    STOCK["FAN-CMP-120"] = 5
    call_back = FollowUp(name="call_back", after="close", delay=timedelta(seconds=2), ticket_type="general",
                         title="Call back: is the machine running well?")  # fmt: skip
    template = variant("equipment_repair", {"confirm": {"duration": timedelta(seconds=2)}},
                       survey=quick_survey("resolved"), follow_ups=[call_back])  # fmt: skip
    h = await open_ticket(env, queue, "equipment_repair", template, **REPAIR)
    await until(h, lambda s: s.nodes.get("diagnose") and s.nodes["diagnose"].assignee == ENG.id, "dispatch")
    parts = {"parts_needed": True, "part_sku": "FAN-CMP-120", "part_quantity": "2"}
    await work(h, ENG, "diagnose", claim=False, diagnosis="fan bearing worn", **parts)
    await until(h, lambda s: "repair" in s.active, "repair")
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG, node="repair"))
    photo, signed = "https://files.example.com/r/before.jpg", "https://files.example.com/r/signature.png"
    arrive = CheckInInput(actor=ENG, node="repair", photos=[photo], note="on site", **NEAR_SITE)
    await h.execute_update(TicketWorkflow.check_in, arrive)
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG, node="repair"))
    leave = CheckOutInput(actor=ENG, node="repair", photos=[photo.replace("before", "after")], signature=signed,
                          **NEAR_SITE)  # fmt: skip
    await h.execute_update(TicketWorkflow.check_out, leave)
    done = CompleteInput(actor=ENG, node="repair", fields={"repair_cost": cny("2400.00")})
    await h.execute_update(TicketWorkflow.complete, done)
    await until(h, lambda s: "cost_approval" in s.active and bool(s.nodes["cost_approval"].approvers), "approvers")
    await h.execute_update(TicketWorkflow.reject, RejectInput(actor=SUPERVISOR, reason="quote the labour again"))
    await work(h, ENG, "repair", repair_cost=cny("900.00"), minutes_worked="60")
    await until(h, lambda s: s.status == "resolved", "the confirmation's timeout", 15)
    ticket_id = ticket_of(h)
    await answer(env, ticket_id, CUSTOMER, 5, "Quick and tidy", on_time=True)
    await finish(h)
    follow_up = await fired(env, follow_up_id(ticket_id, "call_back"))
    assert (await survey_ended(env, ticket_id)).status == SurveyStatus.ANSWERED
    return {
        "equipment_repair_on_site": (h.id, None),
        "survey_answered": (survey_id(ticket_id), None),
        "follow_up_fired": follow_up,
    }


async def equipment_repair_parts_timeout(env: WorkflowEnvironment, queue: str) -> str:
    """equipment_repair with a two-second parts wait: reserve_parts (insufficient) → purchasing
    → nobody reports the delivery, the wait times out → reserve_parts again (the parts came
    meanwhile: reserved) → repair → consume_parts → settle fails (no price rules) and waits →
    finance's ``retry_settlement`` → settled → the customer confirms (with a rating) → close."""
    template = variant("equipment_repair", {"wait_parts": {"duration": timedelta(seconds=2)}})
    h = await open_ticket(env, queue, "equipment_repair", template, **REPAIR)
    await until(h, lambda s: s.nodes.get("diagnose") and s.nodes["diagnose"].assignee == ENG.id, "dispatch")
    parts = {"parts_needed": True, "part_sku": "SEAL-DOOR-1800", "part_quantity": "2"}
    await work(h, ENG, "diagnose", claim=False, diagnosis="door seal torn", **parts)
    await until(h, lambda s: "wait_parts" in s.active, "the parts wait")
    STOCK["SEAL-DOOR-1800"] = 2  # delivered, but nobody says so: the wait times out
    SETTLE_FAILURES.append("no price rules for region east")
    await work(h, ENG, "repair", repair_cost=cny("300.00"), minutes_worked="30")
    await until(h, lambda s: "settle" in s.active, "settlement")
    await event(h, "retry_settlement", FINANCE, "price rules published")
    await until(h, lambda s: "confirm" in s.active, "the confirmation wait")
    await event(h, "customer_confirmed", CUSTOMER, "sealed again", satisfaction=4)
    return await finish(h)


async def maintenance_plan(env: WorkflowEnvironment, queue: str) -> Histories:
    """A maintenance plan's Temporal Schedule (``activities.schedules.create_schedule``, every
    90 days from 100 days ago) backfilled over its one past firing: ScheduledTicket opens the
    equipment_repair ticket keyed by the scheduled time (intake.open_ticket)."""
    now = datetime.now(UTC).replace(microsecond=0)
    start, every = now - timedelta(days=100), timedelta(days=90)
    row = MaintenanceSchedule(
        id=f"mnt-record-{uuid.uuid4().hex[:8]}", kind=ScheduleKind.MAINTENANCE.value, region="east",
        ticket_type="equipment_repair", title="Quarterly compressor service", asset_id="ast_demo0001",
        customer_id="cus_demo0001", contract="SC-DEMO-0001", every_s=int(every.total_seconds()), start_at=start,
        end_at=now + timedelta(days=365), created_by="sup-zhou", created_at=now, updated_at=now,
        ticket={"fields": {"device_id": "CMP-000001", "fault": "other", "site": SITE},
                "description": "Change the oil and the filters"},
    )  # fmt: skip
    assert await create_schedule(env.client, row, queue)
    firing, minute = start + every, timedelta(minutes=1)
    window = ScheduleBackfill(start_at=firing - minute, end_at=firing + minute, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    await env.client.get_schedule_handle(row.id).backfill(window)
    return {"maintenance_plan": await fired(env, row.id)}


async def installation_acceptance_timeout(env: WorkflowEnvironment, queue: str) -> str:
    """installation with a two-second acceptance: schedule → the top offeree claims the install,
    tells the customer they are on the way (``on_the_way`` with an eta) and installs → nobody
    accepts, the wait times out → end → close."""
    template = variant("installation", {"acceptance": {"duration": timedelta(seconds=2)}})
    h = await open_ticket(env, queue, "installation", template, order_no="ERP-55014", product="Heat pump HP-9",
                          address={**SITE, "address": "88 Century Ave, Pudong"})  # fmt: skip
    await work(h, AGENT, "schedule", appointment="2026-12-11T09:30:00+08:00")
    s = await until(h, lambda s: "install" in s.active and bool(s.nodes["install"].offers), "offer")
    who = PEOPLE[s.nodes["install"].offers[0]]
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=who, node="install"))
    await event(h, "on_the_way", who, "leaving the depot", eta="2026-12-11T09:20:00+08:00")
    await h.execute_update(TicketWorkflow.start, StartInput(actor=who, node="install"))
    done = CompleteInput(actor=who, node="install", fields={"serial_no": "HP9-000733"})
    await h.execute_update(TicketWorkflow.complete, done)
    await until(h, lambda s: s.status == "resolved", "the acceptance's timeout", 15)
    return await finish(h)


async def installation_project(env: WorkflowEnvironment, queue: str) -> Histories:
    """installation_project: spawn opens an installation ticket per site (child workflows) and
    waits for all; each child is scheduled, installed, accepted and closed → the supervisor's
    handover → end → close."""
    h = await open_ticket(env, queue, "installation_project", order_no="ERP-77001", product="Heat pump HP-9",
                          site_a=SITE_A, site_b=SITE_B)  # fmt: skip
    s = await until(h, lambda s: len(s.children) == 2 and "install_sites" in s.active, "two children")
    first, second = list(s.children)
    await install_site(env, first, "HP9-100001")
    await install_site(env, second, "HP9-100002")
    await work(h, SUPERVISOR, "handover", handover_notes="both sites running")
    await finish(h)
    return {
        "installation_project": (h.id, None),
        "installation_project_first_site": (f"ticket-{first}", None),
        "installation_project_second_site": (f"ticket-{second}", None),
    }


async def installation_project_cancelled(env: WorkflowEnvironment, queue: str) -> Histories:
    """installation_project: the first site is installed and closed; the project is cancelled
    while the second waits to be scheduled → children.cancel cancels the second (a signed
    ``cancel`` as the system), the closed one is left as it is."""
    h = await open_ticket(env, queue, "installation_project", order_no="ERP-77002", product="Heat pump HP-9",
                          site_a=SITE_A, site_b=SITE_B)  # fmt: skip
    s = await until(h, lambda s: len(s.children) == 2 and "install_sites" in s.active, "two children")
    first, second = list(s.children)
    await install_site(env, first, "HP9-100003")
    await until(h, lambda s: s.children[first].status == TicketStatus.CLOSED, "the first child heard of")
    await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=AGENT, reason="order withdrawn"))
    final = (await h.result()).state
    assert final.children[second].status == TicketStatus.CANCELLED, final.children
    assert (await ticket_handle(env, second).result()).state.status == TicketStatus.CANCELLED
    return {
        "installation_project_cancelled": (h.id, None),
        "installation_project_cancelled_site": (f"ticket-{second}", None),
    }


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


# The corpus, by preset: each scenario's docstring says the branches it takes; the histories it
# records are named by the scenario (or by the names it returns).
CORPUS: dict[str, Scenario] = {
    # general (and the engine's generic paths)
    "general_lifecycle": general_lifecycle,
    "delegate_and_return": delegate_and_return,
    "sla_escalation": sla_escalation,
    "sla_coinciding_milestones": sla_coinciding_milestones,
    "merge": merge,
    # discount_approval
    "signed_discount": signed_discount,
    "discount_rejection_loop": discount_rejection_loop,
    "approver_left": approver_left,
    "approval_deadline": approval_deadline,
    "approval_deadline_rejects": approval_deadline_rejects,
    "discount_legal_rejects": discount_legal_rejects,
    "discount_continue_as_new": discount_continue_as_new,
    # complaint (and its survey, and the satisfaction_follow_up a low rating opens)
    "preset_complaint": preset_complaint,
    "complaint_survey_answered": complaint_survey_answered,
    "complaint_survey_expires": complaint_survey_expires,
    # ecommerce_return
    "preset_ecommerce_return": preset_ecommerce_return,
    "ecommerce_return_refused": ecommerce_return_refused,
    "ecommerce_return_first_branch": ecommerce_return_first_branch,
    "ecommerce_return_continue_as_new": ecommerce_return_continue_as_new,
    # equipment_repair (and its follow-up, a maintenance plan, a leaver's hand-over)
    "preset_equipment_repair": preset_equipment_repair,
    "cancel_releases_parts": cancel_releases_parts,
    "person_left": person_left,
    "equipment_repair_on_site": equipment_repair_on_site,
    "equipment_repair_parts_timeout": equipment_repair_parts_timeout,
    "maintenance_plan": maintenance_plan,
    # installation and installation_project (child tickets)
    "preset_installation": preset_installation,
    "installation_offer_expires": installation_offer_expires,
    "installation_acceptance_timeout": installation_acceptance_timeout,
    "installation_project": installation_project,
    "installation_project_cancelled": installation_project_cancelled,
    # trial_class
    "trial_class_no_show": trial_class_no_show,
    "continue_as_new": continue_as_new,
}
CORPUS_DIR = HERE / "corpus"


def deployment() -> WorkerDeploymentConfig | None:
    """A versioned worker when the workflow types declare their versioning behaviour (a server
    refuses those from an unversioned worker): a build of its own, made current below."""
    if not any(workflow._Definition.must_from_class(w).versioning_behavior for w in WORKFLOWS):
        return None
    build = WorkerDeploymentVersion(deployment_name="ticketflow-record", build_id=f"record-{uuid.uuid4().hex[:8]}")
    return WorkerDeploymentConfig(version=build, use_worker_versioning=True)


async def make_current(env: WorkflowEnvironment, config: WorkerDeploymentConfig, timeout: float = 30) -> None:
    """Set the recording's build current, once its worker polls, and until the routing says so."""
    name, build = config.version.deployment_name, config.version.build_id
    service, ns = env.client.workflow_service, env.client.namespace
    request = wsv1.SetWorkerDeploymentCurrentVersionRequest(namespace=ns, deployment_name=name, build_id=build)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await service.set_worker_deployment_current_version(request)
            described = await service.describe_worker_deployment(
                wsv1.DescribeWorkerDeploymentRequest(namespace=ns, deployment_name=name)
            )
            routing = described.worker_deployment_info
            settling = (
                routing.routing_config_update_state == RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS
            )
            if routing.routing_config.current_deployment_version.build_id == build and not settling:
                return
        except RPCError as exc:  # no poller of the build yet
            if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{name}.{build} is not current after {timeout} s")
        await asyncio.sleep(0.1)


Recorded = dict[str, WorkflowHistory]  # history name → history
ATTEMPTS = 3  # a scenario whose history does not replay is recorded again, at most this often
NONDETERMINISTIC = Path(tempfile.gettempdir()) / "ticketflow-nondeterministic"


async def replay_failure(history: WorkflowHistory) -> Exception | None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    return (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure


async def run_scenario(env: WorkflowEnvironment, queue: str, name: str, scenario: Scenario) -> Recorded:
    """The scenario's histories, each replayed at once against the code that recorded it. One that
    does not replay shows a race in the workflow code (the way it ran is not the way it replays):
    it is kept in ``NONDETERMINISTIC`` for a bug report and the scenario runs again."""
    for attempt in range(1, ATTEMPTS + 1):
        reset()
        recorded = await scenario(env, queue)
        runs = recorded if isinstance(recorded, dict) else {name: (recorded, None)}
        histories = {
            history_name: await env.client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
            for history_name, (wf_id, run_id) in runs.items()
        }
        failed = {n: f for n, h in histories.items() if (f := await replay_failure(h)) is not None}
        if not failed:
            return histories
        NONDETERMINISTIC.mkdir(exist_ok=True)
        for history_name, failure in failed.items():
            kept = NONDETERMINISTIC / f"{history_name}-{histories[history_name].run_id}.json"
            kept.write_text(histories[history_name].to_json())
            print(f"!! {history_name} does not replay (attempt {attempt} of {ATTEMPTS}), kept as {kept}:\n   {failure}")
    raise RuntimeError(f"{name}: recorded {ATTEMPTS} times, never a history that replays")


async def record_histories(names: list[str], scenarios: dict[str, Scenario], out: Path) -> list[Path]:
    """Run the scenarios one after the other on one dev server and one worker (the mocked
    activities under the real names), and write their histories to ``out`` once they replay."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.prefix) / "bin" / "temporal"),
        search_attributes=attrs.ALL,
    )
    signing.install_keys({KEY_ID: KEY})
    env._client = signing_client(env.client, KEY_ID, KEY)  # type: ignore[attr-defined]
    written: list[Path] = []
    began = time.monotonic()
    queue, versioned = f"record-{uuid.uuid4().hex[:6]}", deployment()
    worker = Worker(env.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES,
                    deployment_config=versioned)  # fmt: skip
    async with env, worker:
        if versioned is not None:
            await make_current(env, versioned)
        for name in names:
            started = time.monotonic()
            for history_name, history in (await run_scenario(env, queue, name, scenarios[name])).items():
                path = out / f"{history_name}.json"
                assert path not in written, f"two scenarios record {path.name}"
                path.write_text(history.to_json())
                written.append(path)
                print(f"wrote {path.relative_to(HERE.parent.parent)} ({len(history.events)} events)")
            print(f"  {name}: {time.monotonic() - started:.1f} s")
    print(f"{len(written)} histories in {time.monotonic() - began:.1f} s")
    return written


async def main(names: list[str]) -> None:
    if refused := NEVER_AGAIN & set(names):
        sys.exit(f"not recording {', '.join(sorted(refused))}: recorded by an earlier release, it must stay as it is")
    if unknown := set(names) - set(SCENARIOS):
        sys.exit(f"unknown scenarios {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    await record_histories(names, SCENARIOS, HERE)


async def main_corpus(names: list[str]) -> None:
    """The corpus against today's code (all of it, or the scenarios named). The top-level
    histories are never touched: they prove older releases still replay."""
    if unknown := set(names) - set(CORPUS):
        sys.exit(f"unknown corpus scenarios {', '.join(sorted(unknown))}; known: {', '.join(CORPUS)}")
    CORPUS_DIR.mkdir(exist_ok=True)
    written = await record_histories(names or list(CORPUS), CORPUS, CORPUS_DIR)
    if not names:
        for stale in sorted(set(CORPUS_DIR.glob("*.json")) - set(written)):
            stale.unlink()
            print(f"removed {stale.name}: no scenario records it any more")


USAGE = """usage: python -m tests.histories.record --corpus [scenario...]   (tests/histories/corpus/)
       python -m tests.histories.record <scenario>...              (tests/histories/, by name only)"""

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--corpus"]:
        asyncio.run(main_corpus(args[1:]))
    elif args and not any(a.startswith("-") for a in args):  # overwrites an earlier release's: only by name
        asyncio.run(main(args))
    else:
        sys.exit(f"{USAGE}\ncorpus: {', '.join(CORPUS)}\nscenarios: {', '.join(SCENARIOS)}")
    # The SDK's Rust threads may outlive the event loop and abort the interpreter's teardown
    # (temporalio/sdk-python#300): everything is written by now, so skip the teardown.
    sys.stdout.flush()
    os._exit(0)
