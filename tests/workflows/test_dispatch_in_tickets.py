"""Dispatch inside tickets, on the time-skipping server with the real activities and database.

Each test staffs a region of its own (real Shanghai coordinates), so the decisions are
exact: nearest qualified available engineer, capacity / skills / out-of-office respected,
VIP to senior staff, named assignee → backup, grab pool (race and fallback), re-dispatch
on an SLA breach, delegate / return, request info pausing the SLA, and approval deadlines.
"""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.registry import ACTIVITIES
from models.db import Database
from models.tables import Actor, Ticket, TicketEventRow
from models.template import TemplateSpec, TemplateVersion
from models.ticket import (
    CUSTOMER_REPLY,
    ActorRef,
    ApproveInput,
    ClaimInput,
    CompleteInput,
    DelegateInput,
    EventInput,
    NodeStatus,
    PersonLeft,
    Priority,
    RequestInfoInput,
    ReturnInput,
    StartInput,
    TicketInput,
    TicketState,
)
from workflows.registry import WORKFLOWS
from workflows.ticket import INVALID_TRANSITION, TicketWorkflow

SITE = {"lat": 31.2400, "lon": 121.4903, "address": "The Bund, Shanghai"}
# Real places around the site, with their distance to it.
LUJIAZUI = (31.2397, 121.4998)  # 0.9 km
PEOPLES_SQUARE = (31.2304, 121.4737)  # 1.9 km
YU_GARDEN = (31.2272, 121.4921)  # 1.4 km
JINGAN_TEMPLE = (31.2235, 121.4452)  # 4.7 km
HONGQIAO = (31.1979, 121.3364)  # 15.4 km


def template(node: dict[str, Any], *extra_nodes: dict[str, Any], **spec: Any) -> TemplateVersion:
    body = {
        "key": "dispatch_case",
        "name": "Dispatch case",
        "fields": [
            {"name": "site", "type": "location"},
            {"name": "tier", "type": "enum", "options": ["standard", "vip"]},
            {"name": "notes", "type": "text"},
            {"name": "amount", "type": "money"},
            {"name": "contact_phone", "type": "phone"},
        ],
        "start": node["id"],
        "nodes": [node, *extra_nodes, {"id": "done", "type": "end"}],
        **spec,
    }
    return TemplateVersion(key="dispatch_case", version=1, spec=TemplateSpec.model_validate(body))


VISIT = {
    "id": "visit",
    "type": "task",
    "assignee": {"role": "engineer"},
    "form": ["notes"],
    "dispatch": {"skills": {"equipment_repair": 2}, "location_field": "site", "tier_field": "tier"},
    "next": "done",
}


class Region:
    """A region of its own, staffed per test."""

    def __init__(self, db: Database) -> None:
        self.db, self.code = db, f"r{uuid.uuid4().hex[:8]}"

    def ref(self, actor_id: str, roles: tuple[str, ...] = ("engineer",)) -> ActorRef:
        return ActorRef(id=actor_id, roles=list(roles), regions=[self.code])

    async def staff(self, *people: dict[str, Any]) -> None:
        async with self.db.session() as session:
            for p in people:
                base = {"roles": ["engineer"], "skills": {"equipment_repair": 3}, "capacity": 5, "seniority": 2}
                base |= p
                lat, lon = base.pop("at", (None, None))
                session.add(Actor(regions=[self.code], name=p["id"], home_lat=lat, home_lon=lon, **base))
            await session.commit()

    async def busy(self, actor_id: str, open_tickets: int) -> None:
        """Open tickets held by ``actor_id`` in the read model (their load)."""
        now = datetime.now(UTC)
        async with self.db.session() as session:
            for _ in range(open_tickets):
                tid = f"L{uuid.uuid4().hex[:12]}"
                session.add(
                    Ticket(
                        id=tid,
                        ticket_type="x",
                        region=self.code,
                        priority="normal",
                        status="in_progress",
                        assignee=actor_id,
                        title="load",
                        channel="agent",
                        created_by="agent-wang",
                        created_at=now,
                        updated_at=now,
                    )  # fmt: skip
                )
            await session.commit()

    def uid(self, name: str) -> str:
        return f"{self.code}-{name}"


@pytest.fixture
async def run(tsenv, db):
    queue = f"tq-dispatch-{uuid.uuid4().hex[:8]}"
    async with Worker(tsenv.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):

        async def go(region: Region, tmpl: TemplateVersion, **fields: Any) -> WorkflowHandle:
            inp = TicketInput(
                ticket_id=f"D{uuid.uuid4().hex[:12].upper()}", ticket_type=tmpl.key, region=region.code,
                priority=Priority.NORMAL, title="Chiller alarm", created_by=ActorRef(id="agent-wang", roles=["agent"],
                regions=["*"]), created_at=datetime.now(UTC), template=tmpl, fields=fields,
            )  # fmt: skip
            return await tsenv.client.start_workflow(
                TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue
            )

        yield go


async def until(h: WorkflowHandle, check, what: str = "condition", tries: int = 300) -> TicketState:
    for _ in range(tries):
        s = await h.query(TicketWorkflow.get_state)
        if check(s):
            return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached: {s.model_dump_json(include={'active', 'nodes'})}")


async def events(db: Database, ticket_id: str, action: str | None = None) -> list[TicketEventRow]:
    async with db.session() as session:
        q = select(TicketEventRow).where(col(TicketEventRow.ticket_id) == ticket_id).order_by(col(TicketEventRow.seq))
        rows = (await session.exec(q)).all()
    return [r for r in rows if action is None or r.action == action]


async def recorded(db: Database, ticket_id: str, action: str, count: int = 1) -> list[TicketEventRow]:
    """The ticket's ``action`` events once the read model has ``count`` of them (the state a
    query shows may be a moment ahead of the projection)."""
    for _ in range(200):
        found = await events(db, ticket_id, action)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} {action} event(s) not projected: {found}")


async def refused(call) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await call
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


def ooo_now() -> list[dict[str, str]]:
    now = datetime.now(UTC)
    return [{"start": (now - timedelta(days=1)).isoformat(), "end": (now + timedelta(days=3)).isoformat()}]


# --- best score: nearest qualified available engineer, and why ---


async def test_nearest_qualified_available_engineer_gets_the_job_and_the_why_is_recorded(run, db):
    r = Region(db)
    away, full, unskilled, chosen, far = (r.uid(n) for n in ("away", "full", "unskilled", "chosen", "far"))
    await r.staff(
        {"id": away, "at": LUJIAZUI, "out_of_office": ooo_now()},  # nearest, but on leave
        {"id": full, "at": PEOPLES_SQUARE, "capacity": 1},  # at capacity
        {"id": unskilled, "at": YU_GARDEN, "skills": {"installation": 5}},  # no repair skill
        {"id": chosen, "at": JINGAN_TEMPLE},
        {"id": far, "at": HONGQIAO},
    )
    await r.busy(full, 1)
    h = await run(r, template(VISIT), site=SITE)
    s = await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee, "dispatch")
    assert (s.nodes["visit"].assignee, s.nodes["visit"].status, s.assignee) == (chosen, NodeStatus.ASSIGNED, chosen)

    [decision] = await recorded(db, s.ticket_id, "dispatched")
    why = decision.data
    assert why["strategy"] == "best_score" and why["outcome"] == "assigned"
    assert why["explanation"].startswith(f"{chosen}: nearest qualified (4.7 km)")
    assert [c["id"] for c in why["candidates"]] == [chosen, far]  # ranked, with scores and distances
    assert why["candidates"][0]["score"] > why["candidates"][1]["score"]
    assert 4.4 < why["candidates"][0]["distance_km"] < 4.8 and 15 < why["candidates"][1]["distance_km"] < 16
    # The region's own: `away` on leave, `full` at capacity (people of every region whom other tests
    # left at capacity count too, so at least one).
    assert why["rejections"]["availability"] == 1 and why["rejections"]["capacity"] >= 1
    assert full not in [c["id"] for c in why["candidates"]]
    assert why["rejections"]["skills"] >= 1  # unskilled (and everyone of other roles)
    assert why["qualified"] == 2


async def test_vip_tickets_go_to_senior_staff_even_when_farther(run, db):
    r = Region(db)
    junior, senior = r.uid("junior"), r.uid("senior")
    await r.staff({"id": junior, "at": LUJIAZUI, "seniority": 2}, {"id": senior, "at": HONGQIAO, "seniority": 5})
    h = await run(r, template(VISIT), site=SITE, tier="vip")
    s = await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee, "dispatch")
    assert s.nodes["visit"].assignee == senior
    [decision] = await recorded(db, s.ticket_id, "dispatched")
    assert "seniority L5 for vip" in decision.data["explanation"] and decision.data["rejections"]["tier"] >= 1


async def test_nobody_qualified_leaves_the_task_open_and_says_why(run, db):
    r = Region(db)
    await r.staff({"id": r.uid("unskilled"), "at": LUJIAZUI, "skills": {"network": 2}})
    h = await run(r, template(VISIT), site=SITE)
    s = await until(h, lambda s: s.seq >= 3, "dispatch recorded")
    assert s.nodes["visit"].status == NodeStatus.OPEN and s.nodes["visit"].assignee is None
    [decision] = await recorded(db, s.ticket_id, "dispatched")
    assert decision.data["outcome"] == "none" and "nobody qualified" in decision.data["explanation"]
    # The role may still claim it by hand.
    s = await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=r.ref(r.uid("unskilled"))))
    assert s.nodes["visit"].assignee == r.uid("unskilled")


async def test_a_named_assignee_on_leave_hands_over_to_the_first_available_backup(run, db):
    r = Region(db)
    boss, b1, b2 = r.uid("boss"), r.uid("b1"), r.uid("b2")
    await r.staff({"id": boss, "out_of_office": ooo_now()}, {"id": b1, "active": False}, {"id": b2})
    node = {"id": "visit", "type": "task", "assignee": {"user": boss, "backups": [b1, b2]}, "next": "done"}
    h = await run(r, template(node))
    s = await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee == b2, "backup")
    [decision] = await recorded(db, s.ticket_id, "dispatched")
    assert decision.data["outcome"] == "backup"
    assert f"2nd backup (skipped {boss}: unavailable; {b1}: not in roster)" in decision.data["explanation"]


# --- grab pool ---

POOL = {**VISIT, "dispatch": {**VISIT["dispatch"], "strategy": "grab_pool", "top_n": 2, "offer_window": "PT30M"}}


async def test_grab_pool_two_engineers_race_one_wins_the_other_gets_a_conflict(run, db):
    r = Region(db)
    a, b, c = r.uid("a"), r.uid("b"), r.uid("c")
    await r.staff({"id": a, "at": LUJIAZUI}, {"id": b, "at": PEOPLES_SQUARE}, {"id": c, "at": HONGQIAO})
    h = await run(r, template(POOL), site=SITE)
    s = await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].offer_until, "offer")
    assert s.nodes["visit"].offers == [a, b]  # the top 2, best first
    [offer] = await recorded(db, s.ticket_id, "offered")
    assert offer.data["offers"] == [a, b] and "if nobody claims" in offer.data["explanation"]

    # c was not offered the job.
    cause = await refused(h.execute_update(TicketWorkflow.claim, ClaimInput(actor=r.ref(c))))
    assert cause.type == "NotAllowed"
    results = await asyncio.gather(
        h.execute_update(TicketWorkflow.claim, ClaimInput(actor=r.ref(b))),
        h.execute_update(TicketWorkflow.claim, ClaimInput(actor=r.ref(a))),
        return_exceptions=True,
    )
    won = [x for x in results if isinstance(x, TicketState)]
    lost = [x for x in results if isinstance(x, WorkflowUpdateFailedError)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0].cause, ApplicationError) and lost[0].cause.type == INVALID_TRANSITION
    s = await until(h, lambda s: s.nodes["visit"].offer_until is None, "offer closed")
    assert s.nodes["visit"].assignee in (a, b) and s.nodes["visit"].candidates == "role:engineer"
    assert await events(db, s.ticket_id, "offer_expired") == []


async def test_grab_pool_nobody_claims_in_time_so_the_best_score_gets_it(run, db, tsenv):
    r = Region(db)
    a, b = r.uid("a"), r.uid("b")
    await r.staff({"id": a, "at": LUJIAZUI}, {"id": b, "at": HONGQIAO})
    h = await run(r, template(POOL), site=SITE)
    await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].offer_until, "offer")
    await tsenv.sleep(timedelta(minutes=31))
    s = await until(h, lambda s: s.nodes["visit"].assignee is not None, "fallback")
    assert s.nodes["visit"].assignee == a and s.nodes["visit"].status == NodeStatus.ASSIGNED
    [expired] = await recorded(db, s.ticket_id, "offer_expired")
    assert expired.data["assignee"] == a and expired.data["explanation"] == "nobody claimed in time: best score"


async def test_round_robin_rotates_over_the_qualified(run, db):
    r = Region(db)
    people = [r.uid(n) for n in ("a", "b", "c")]
    await r.staff(*({"id": p} for p in people))
    rr = {**VISIT, "dispatch": {"strategy": "round_robin", "skills": {"equipment_repair": 1}}}
    got = []
    for _ in range(4):
        h = await run(r, template(rr))
        s = await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee, "dispatch")
        got.append(s.nodes["visit"].assignee)
    assert got == [*people, people[0]]


# --- re-dispatch on an SLA breach ---


async def test_breach_while_nobody_started_reassigns_to_someone_else(run, db, tsenv):
    r = Region(db)
    a, b = r.uid("a"), r.uid("b")
    await r.staff({"id": a, "at": LUJIAZUI}, {"id": b, "at": HONGQIAO})
    tmpl = template(VISIT, sla={"normal": {"response": "PT1H"}})
    h = await run(r, tmpl, site=SITE)
    await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee == a, "dispatch")
    await tsenv.sleep(timedelta(hours=1, minutes=5))  # a never starts
    s = await until(h, lambda s: s.nodes["visit"].assignee == b, "reassigned")
    [moved] = await recorded(db, s.ticket_id, "reassigned")
    assert moved.data["previous"] == a and moved.data["explanation"].startswith("SLA response breached: ")
    assert s.sla.breached


# --- delegate and return; request info pauses the SLA ---


async def visit_started_by_the_nearer(run, db) -> tuple[Region, WorkflowHandle, str, str]:
    """Two engineers; the visit goes to the nearer one, who starts it. Returns (region, ticket,
    nearer, farther)."""
    r = Region(db)
    a, b = r.uid("a"), r.uid("b")
    await r.staff({"id": a, "at": LUJIAZUI}, {"id": b, "at": HONGQIAO})
    h = await run(r, template(VISIT), site=SITE)
    await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee == a, "dispatch")
    await h.execute_update(TicketWorkflow.start, StartInput(actor=r.ref(a)))
    return r, h, a, b


async def test_delegate_then_return_a_task(run, db):
    r, h, a, b = await visit_started_by_the_nearer(run, db)
    cause = await refused(h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=r.ref(b), to=b)))
    assert cause.type == "NotAllowed"  # not b's task to hand on
    s = await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=r.ref(a), to=b, reason="on another site"))
    assert (s.nodes["visit"].assignee, s.nodes["visit"].delegations) == (b, {b: a})
    cause = await refused(h.execute_update(TicketWorkflow.complete, CompleteInput(actor=r.ref(a))))
    assert cause.type == "NotAllowed"  # a handed it on
    s = await h.execute_update(TicketWorkflow.return_, ReturnInput(actor=r.ref(b)))
    assert (s.nodes["visit"].assignee, s.nodes["visit"].delegations, s.assignee) == (a, {}, a)
    s = await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=r.ref(a), fields={"notes": "ok"}))
    assert s.status.value == "resolved"


async def test_request_info_pauses_the_sla_until_the_customer_replies(run, db, tsenv):
    r = Region(db)
    a = r.uid("a")
    await r.staff({"id": a, "at": LUJIAZUI})
    tmpl = template(VISIT, sla={"normal": {"resolution": "PT8H"}})
    h = await run(r, tmpl, site=SITE, contact_phone="+8613800000000")
    await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee == a, "dispatch")
    await h.execute_update(TicketWorkflow.start, StartInput(actor=r.ref(a)))
    s = await h.execute_update(TicketWorkflow.request_info, RequestInfoInput(actor=r.ref(a), question="Which floor?"))
    assert s.nodes["visit"].awaiting_info == "Which floor?"
    s = await until(h, lambda s: s.sla.clocks["resolution"].running_since is None, "paused")
    used = s.sla.clocks["resolution"].used
    cause = await refused(h.execute_update(TicketWorkflow.request_info, RequestInfoInput(actor=r.ref(a), question="?")))
    assert cause.type == INVALID_TRANSITION  # already waiting on the customer
    await tsenv.sleep(timedelta(days=2))  # the customer takes two days: not counted
    s = await h.query(TicketWorkflow.get_state)
    assert not s.sla.breached and s.sla.clocks["resolution"].used == used
    customer = ActorRef(id="gateway-qr", roles=["channel"], regions=["*"])
    await h.execute_update(TicketWorkflow.send_event, EventInput(name=CUSTOMER_REPLY, actor=customer, text="3rd floor"))
    s = await until(h, lambda s: s.sla.clocks["resolution"].running_since is not None, "resumed")
    assert s.nodes["visit"].awaiting_info is None and not s.sla.breached
    [reply] = await recorded(db, s.ticket_id, f"event:{CUSTOMER_REPLY}")
    assert reply.data["answers"] == ["visit"]


async def test_the_sla_pauses_at_most_max_pause_and_a_task_asks_at_most_max_info_requests(run, db, tsenv):
    r = Region(db)
    a = r.uid("a")
    await r.staff({"id": a, "at": LUJIAZUI})
    policy = {"max_pause": "PT2H", "max_info_requests": 2}
    tmpl = template(VISIT, sla={"normal": {"resolution": "PT8H"}}, sla_policy=policy)
    h = await run(r, tmpl, site=SITE)
    await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].assignee == a, "dispatch")
    me = r.ref(a)
    await h.execute_update(TicketWorkflow.start, StartInput(actor=me))
    await h.execute_update(TicketWorkflow.request_info, RequestInfoInput(actor=me, question="Which floor?"))
    s = await until(h, lambda s: s.sla.clocks["resolution"].running_since is None, "paused")
    used = s.sla.clocks["resolution"].used
    await tsenv.sleep(timedelta(hours=5))  # the customer is silent: 2 h paused, then the clock runs
    s = await until(h, lambda s: s.sla.clocks["resolution"].running_since is not None, "limit")
    clock = s.sla.clocks["resolution"]
    assert clock.pause_spent and abs(clock.paused_for - timedelta(hours=2)) < timedelta(seconds=5)
    assert s.nodes["visit"].awaiting_info == "Which floor?"  # still asked; the clock no longer waits
    [limit] = await recorded(db, s.ticket_id, "sla_pause_limit")
    assert limit.data == {"sla": "resolution", "max_pause": "2:00:00"}
    customer = ActorRef(id="gateway-qr", roles=["channel"], regions=["*"])
    await h.execute_update(TicketWorkflow.send_event, EventInput(name=CUSTOMER_REPLY, actor=customer, text="3rd floor"))
    await until(h, lambda s: s.nodes["visit"].awaiting_info is None, "answered")
    s = await h.execute_update(TicketWorkflow.request_info, RequestInfoInput(actor=me, question="Which door?"))
    assert s.nodes["visit"].info_requests == 2
    await tsenv.sleep(timedelta(hours=1))
    s = await h.query(TicketWorkflow.get_state)
    assert s.sla.clocks["resolution"].running_since is not None  # the pause is used up: it runs
    assert s.sla.clocks["resolution"].used == used  # nothing was added while paused
    await h.execute_update(TicketWorkflow.send_event, EventInput(name=CUSTOMER_REPLY, actor=customer, text="north"))
    await until(h, lambda s: s.nodes["visit"].awaiting_info is None, "answered again")
    cause = await refused(h.execute_update(TicketWorkflow.request_info, RequestInfoInput(actor=me, question="?")))
    assert cause.type == INVALID_TRANSITION and "limit" in cause.message


# --- approval deadlines and delegation ---


def approval(**level: Any) -> dict[str, Any]:
    return {
        "id": "ok",
        "type": "approval",
        "levels": [{"name": "manager", "approvers": {"user": level.pop("user")}, "timeout": "PT4H", **level}],
        "on_reject": "done",
        "next": "done",
    }


async def test_an_overdue_level_escalates_to_the_approvers_manager(run, db, tsenv):
    r = Region(db)
    boss, lead = r.uid("boss"), r.uid("lead")
    await r.staff({"id": boss, "roles": ["director"]}, {"id": lead, "roles": ["supervisor"], "manager_id": boss})
    h = await run(r, template(approval(user=lead)))
    s = await until(h, lambda s: s.nodes.get("ok") and s.nodes["ok"].approvers == [lead], "approval open")
    await tsenv.sleep(timedelta(hours=4, minutes=1))
    s = await until(h, lambda s: boss in s.nodes["ok"].approvers, "escalated")
    [esc] = await recorded(db, s.ticket_id, "approval_escalated")
    assert esc.data["added"] == [boss]
    s = await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=r.ref(boss, ("director",))))
    assert s.nodes["ok"].outcome == "approved"


async def test_an_overdue_level_can_decide_by_itself(run, db, tsenv):
    r = Region(db)
    lead = r.uid("lead")
    await r.staff({"id": lead, "roles": ["supervisor"]})
    h = await run(r, template(approval(user=lead, on_timeout="reject")))
    await until(h, lambda s: s.nodes.get("ok") and s.nodes["ok"].approvers == [lead], "approval open")
    await tsenv.sleep(timedelta(hours=5))
    s = await until(h, lambda s: s.nodes["ok"].outcome is not None, "decided")
    assert s.nodes["ok"].outcome == "rejected"
    [timed_out] = await recorded(db, s.ticket_id, "approval_timed_out")
    assert timed_out.data["decision"] == "rejected"


async def test_an_approver_delegates_the_vote(run, db):
    r = Region(db)
    lead, deputy = r.uid("lead"), r.uid("deputy")
    await r.staff({"id": lead, "roles": ["supervisor"]}, {"id": deputy, "roles": ["supervisor"]})
    h = await run(r, template(approval(user=lead)))
    await until(h, lambda s: s.nodes.get("ok") and s.nodes["ok"].approvers == [lead], "approval open")
    s = await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=r.ref(lead, ("supervisor",)), to=deputy))
    assert s.nodes["ok"].approvers == [deputy] and s.nodes["ok"].delegations == {deputy: lead}
    cause = await refused(h.execute_update(TicketWorkflow.approve, ApproveInput(actor=r.ref(lead, ("supervisor",)))))
    assert cause.type == "NotAllowed"  # handed on: no longer lead's vote
    s = await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=r.ref(deputy, ("supervisor",))))
    assert s.nodes["ok"].outcome == "approved"


async def test_a_vote_handed_on_stays_one_vote(run, db):
    r = Region(db)
    lead, deputy, third = r.uid("lead"), r.uid("deputy"), r.uid("third")
    await r.staff(*({"id": p, "roles": ["supervisor"]} for p in (lead, deputy, third)))
    node = {
        "id": "ok", "type": "approval", "on_reject": "done", "next": "done",
        "levels": [{"name": "leads", "approvers": {"role": "supervisor"}, "quorum": "all"}],
    }  # fmt: skip
    h = await run(r, template(node))
    s = await until(h, lambda s: s.nodes.get("ok") and lead in s.nodes["ok"].approvers, "approval open")
    sup = lambda who: r.ref(who, ("supervisor",))  # noqa: E731
    assert {lead, deputy, third} <= set(s.nodes["ok"].approvers)
    cause = await refused(h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=sup(lead), to=deputy)))
    assert cause.type == "AlreadyVoted"  # deputy already decides on this level: two seats, one person
    cause = await refused(h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=sup(lead), to="agent-wang")))
    assert cause.type == "NotAllowed"  # the requester may not approve their own request
    outsider = r.uid("outsider")
    await r.staff({"id": outsider, "roles": ["manager"]})
    s = await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=sup(lead), to=outsider))
    assert outsider in s.nodes["ok"].approvers and lead not in s.nodes["ok"].approvers
    await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=r.ref(outsider, ("manager",))))
    cause = await refused(h.execute_update(TicketWorkflow.return_, ReturnInput(actor=r.ref(outsider, ("manager",)))))
    assert cause.type == "AlreadyVoted"  # voted: the seat cannot go back for a second vote


# --- someone leaves ---


async def deactivate(db: Database, actor_id: str) -> None:
    async with db.session() as session:
        row = await session.get(Actor, actor_id)
        row.active = False
        session.add(row)
        await session.commit()


async def test_a_task_held_by_someone_who_left_is_dispatched_again_without_them(run, db):
    r, h, near, far = await visit_started_by_the_nearer(run, db)
    await deactivate(db, near)
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=near, reason="left the company"))
    s = await until(h, lambda s: s.nodes["visit"].assignee == far, "given again")
    assert (s.nodes["visit"].status, s.assignee) == (NodeStatus.ASSIGNED, far)  # to start afresh
    [released] = await recorded(db, s.ticket_id, "released")
    assert released.data == {"node": "visit", "person": near, "reason": "left the company"}
    [again] = await recorded(db, s.ticket_id, "reassigned")
    assert again.data["assignee"] == far and again.data["explanation"].startswith(f"{near} left: ")
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=near))  # again: nothing to take back
    await until(h, lambda s: not s.pending_departures, "second departure handled")
    await h.execute_update(TicketWorkflow.start, StartInput(actor=r.ref(far)))  # replies once projected
    assert len(await events(db, s.ticket_id, "released")) == 1


async def test_a_vote_owed_by_someone_who_left_passes_to_their_manager(run, db):
    r = Region(db)
    boss, lead = r.uid("boss"), r.uid("lead")
    await r.staff({"id": boss, "roles": ["director"]}, {"id": lead, "roles": ["supervisor"], "manager_id": boss})
    h = await run(r, template(approval(user=lead)))
    await until(h, lambda s: s.nodes.get("ok") and s.nodes["ok"].approvers == [lead], "approval open")
    await deactivate(db, lead)
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=lead))
    s = await until(h, lambda s: s.nodes["ok"].approvers == [boss], "seat passed on")
    [replaced] = await recorded(db, s.ticket_id, "approver_replaced")
    assert (replaced.data["person"], replaced.data["added"]) == (lead, [boss])
    s = await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=r.ref(boss, ("director",))))
    assert s.nodes["ok"].outcome == "approved"


async def test_an_offer_to_someone_who_left_is_withdrawn_and_never_falls_back_to_them(run, db, tsenv):
    r = Region(db)
    a, b = r.uid("a"), r.uid("b")
    await r.staff({"id": a, "at": LUJIAZUI}, {"id": b, "at": HONGQIAO})
    h = await run(r, template(POOL), site=SITE)
    await until(h, lambda s: s.nodes.get("visit") and s.nodes["visit"].offers == [a, b], "offer")
    await deactivate(db, a)  # a was the best score: the fallback
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=a))
    s = await until(h, lambda s: s.nodes["visit"].offers == [b], "offer withdrawn")
    [withdrawn] = await recorded(db, s.ticket_id, "offer_withdrawn")
    assert (withdrawn.data["person"], withdrawn.data["offers"]) == (a, [b])
    await tsenv.sleep(timedelta(minutes=31))
    s = await until(h, lambda s: s.nodes["visit"].assignee is not None, "fallback")
    assert s.nodes["visit"].assignee == b


async def test_a_delegate_who_left_hands_the_task_back_and_a_delegator_who_left_gets_nothing_back(run, db):
    r, h, a, b = await visit_started_by_the_nearer(run, db)
    await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=r.ref(a), to=b))
    await deactivate(db, b)
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=b))
    s = await until(h, lambda s: s.nodes["visit"].assignee == a, "back to the delegator")
    assert s.nodes["visit"].delegations == {}
    [released] = await recorded(db, s.ticket_id, "released")
    assert (released.data["person"], released.data["to"]) == (b, a)

    c = r.uid("c")
    await r.staff({"id": c, "at": YU_GARDEN})
    await h.execute_update(TicketWorkflow.delegate, DelegateInput(actor=r.ref(a), to=c))
    await deactivate(db, a)
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=a))
    s = await until(h, lambda s: s.nodes["visit"].delegations == {}, "delegation dropped")
    assert s.nodes["visit"].assignee == c  # c keeps the work: there is nobody to return it to
    cause = await refused(h.execute_update(TicketWorkflow.return_, ReturnInput(actor=r.ref(c))))
    assert cause.type == INVALID_TRANSITION  # nothing was delegated to c any more
    assert [e.data["person"] for e in await recorded(db, s.ticket_id, "delegation_dropped")] == [a]


async def test_a_sole_approver_who_left_is_replaced_by_the_supervisors_and_with_nobody_the_level_rejects(run, db):
    r = Region(db)
    lead, sup = r.uid("lead"), r.uid("sup")
    await r.staff({"id": lead, "roles": ["supervisor"]}, {"id": sup, "roles": ["supervisor"]})
    h = await run(r, template(approval(user=lead)))
    await until(h, lambda s: s.nodes.get("ok") and s.nodes["ok"].approvers == [lead], "approval open")
    await deactivate(db, lead)  # no manager: the region's (active) supervisors take the seat
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=lead))
    await until(h, lambda s: s.nodes["ok"].approvers == [sup], "seat to the supervisors")
    await deactivate(db, sup)  # nobody left who could decide: the level is rejected
    await h.signal(TicketWorkflow.person_left, PersonLeft(person_id=sup))
    s = await until(h, lambda s: s.nodes["ok"].outcome is not None, "decided")
    assert s.nodes["ok"].outcome == "rejected"
    [unstaffed] = await recorded(db, s.ticket_id, "approval_unstaffed")
    assert (unstaffed.data["person"], unstaffed.data["added"]) == (sup, [])
