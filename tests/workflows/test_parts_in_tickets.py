"""Spare parts inside a ticket (time-skipping server, real activities and database):
reserve at dispatch, consume what was used (release the rest), release everything on cancel."""

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlmodel import select
from temporalio.worker import Worker

from activities.registry import ACTIVITIES
from models.db import Database
from models.inventory_tables import Part, StockLevel, Warehouse
from models.template import TemplateSpec, TemplateVersion
from models.ticket import ActorRef, CancelInput, ClaimInput, CompleteInput, Priority, StartInput, TicketInput
from store.inventory import receive
from workflows.registry import WORKFLOWS
from workflows.ticket import TicketWorkflow

AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])

FLOW = TemplateSpec.model_validate(
    {
        "key": "parts_flow",
        "name": "Repair with parts",
        "fields": [
            {"name": "part_sku", "type": "text"},
            {"name": "part_quantity", "type": "number"},
            {"name": "used", "type": "number"},
        ],
        "start": "reserve",
        "nodes": [
            {"id": "reserve", "type": "reserve_parts", "sku_field": "part_sku", "quantity_field": "part_quantity",
             "on_insufficient": "buy", "next": "work"},
            {"id": "work", "type": "task", "assignee": {"role": "engineer"}, "form": ["used"], "required": ["used"],
             "next": "consume"},
            {"id": "consume", "type": "consume_parts", "reservation": "reserve", "used_field": "used", "next": "done"},
            {"id": "buy", "type": "task", "assignee": {"role": "agent"}, "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
)  # fmt: skip


@pytest.fixture
async def stock(db: Database):
    """A fresh part with 5 units in a fresh east warehouse."""
    sku, wh = f"P-{uuid.uuid4().hex[:8]}", f"W-{uuid.uuid4().hex[:6]}"
    async with db.session() as s:
        s.add(Part(sku=sku, name="test part", unit="pcs", unit_price="10.00", currency="CNY", reorder_point=0))
        s.add(Warehouse(code=wh, name="test", region="east", kind="regional", lat=31.2, lon=121.5))
        await s.flush()
        await receive(await s.connection(), key=f"test:{wh}:{sku}", warehouse=wh, sku=sku, quantity=5, actor_id="t")
        await s.commit()

    async def level() -> tuple[int, int]:
        async with db.session() as s:
            row = (await s.exec(select(StockLevel).where(StockLevel.warehouse == wh, StockLevel.sku == sku))).one()
            return row.on_hand, row.reserved

    return sku, level


@pytest.fixture
async def run(tsenv, db):
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(tsenv.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):

        async def start(sku: str, quantity: int):
            inp = TicketInput(
                ticket_id=f"TP{uuid.uuid4().hex[:10].upper()}", ticket_type="parts_flow", region="east",
                priority=Priority.NORMAL, title="needs parts", created_by=AGENT, created_at=datetime.now(UTC),
                template=TemplateVersion(key="parts_flow", version=1, spec=FLOW),
                fields={"part_sku": sku, "part_quantity": str(quantity)},
            )  # fmt: skip
            h = await tsenv.client.start_workflow(
                TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue
            )
            for _ in range(200):
                state = await h.query(TicketWorkflow.get_state)
                if any(state.nodes[n].type == "task" for n in state.active):
                    return h, state
                await asyncio.sleep(0.05)
            raise AssertionError("the ticket never opened a task")  # pragma: no cover

        yield start


async def test_reserve_then_consume_what_was_used(run, stock):
    sku, level = stock
    h, state = await run(sku, 3)
    assert state.active == ["work"] and state.nodes["reserve"].outcome == "reserved"
    assert await level() == (5, 3)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    s = await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG, fields={"used": "2"}))
    assert s.status.value == "resolved" and s.reservations == []
    assert await level() == (3, 0)  # 2 consumed, the third released
    assert s.nodes["consume"].result["consumed"][0]["quantity"] == 2


async def test_cancel_releases_the_reservation(run, stock):
    sku, level = stock
    h, state = await run(sku, 4)
    assert state.reservations == ["reserve"] and await level() == (5, 4)
    await h.execute_update(TicketWorkflow.cancel, CancelInput(actor=AGENT, reason="customer withdrew"))
    result = await h.result()
    assert result.state.status.value == "cancelled" and result.state.reservations == []
    assert await level() == (5, 0)
    # Cancelling is final: nothing is released twice, whatever retries happened.
    assert await level() == (5, 0)


async def test_insufficient_stock_takes_the_template_path(run, stock):
    sku, level = stock
    h, state = await run(sku, 9)
    assert state.active == ["buy"] and state.nodes["reserve"].outcome == "insufficient"
    assert await level() == (5, 0)


async def test_low_stock_is_announced_once_per_crossing(run, db: Database):
    """A reservation that takes a part below its reorder point tells the region's warehouse staff, once."""
    from sqlmodel import col

    from models.inventory_tables import StockAlert
    from models.notifications_tables import NotificationInbox as InboxItem

    sku, wh = f"P-{uuid.uuid4().hex[:8]}", f"W-{uuid.uuid4().hex[:6]}"
    async with db.session() as s:
        s.add(
            Part(
                sku=sku,
                name="low part",
                unit="pcs",
                unit_price="10.00",
                currency="CNY",
                reorder_point=3,
                reorder_qty=10,
            )
        )
        s.add(Warehouse(code=wh, name="Low WH", region="east", kind="regional", lat=31.2, lon=121.5))
        await s.flush()
        await receive(await s.connection(), key=f"test:{wh}:{sku}", warehouse=wh, sku=sku, quantity=5, actor_id="t")
        await s.commit()
    await run(sku, 3)  # 2 left < reorder point 3
    await run(sku, 1)  # still below: no second announcement
    async with db.session() as s:
        alerts = (await s.exec(select(StockAlert).where(StockAlert.sku == sku))).all()
        assert len(alerts) == 1 and alerts[0].notified_at is not None
        inbox = (
            await s.exec(select(InboxItem).where(col(InboxItem.actor_id) == "wh-xu", col(InboxItem.body).contains(sku)))
        ).all()
    assert len(inbox) == 1


PRESETTLED = TemplateSpec.model_validate(
    {
        "key": "presettled",
        "name": "Inspection agreed up front",
        "fields": [{"name": "minutes", "type": "number"}],
        "start": "agree",
        "nodes": [
            {"id": "agree", "type": "settle", "kind": "pre_settlement", "services": ["INSPECT"], "next": "work"},
            {"id": "work", "type": "task", "assignee": {"role": "engineer"}, "form": ["minutes"], "next": "final"},
            {"id": "final", "type": "settle", "services": ["INSPECT"], "hourly_service": "REPAIR-ONSITE",
             "minutes_field": "minutes", "on_over_budget": "approve_extra", "next": "done"},
            {"id": "approve_extra", "type": "approval",
             "levels": [{"name": "supervisor", "approvers": {"role": "supervisor"}}],
             "on_reject": "work", "next": "done"},
            {"id": "done", "type": "end"},
        ],
    }
)  # fmt: skip


async def test_final_settlement_above_the_pre_settlement_needs_approval(tsenv, db):
    """The amount agreed before the work is locked; a final statement above it goes to approval."""
    from models.ticket import ApproveInput

    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(tsenv.client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        inp = TicketInput(
            ticket_id=f"TS{uuid.uuid4().hex[:10].upper()}", ticket_type="presettled", region="east",
            priority=Priority.NORMAL, title="inspect", created_by=AGENT, created_at=datetime.now(UTC),
            template=TemplateVersion(key="presettled", version=1, spec=PRESETTLED),
        )  # fmt: skip
        h = await tsenv.client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{inp.ticket_id}", task_queue=queue)
        for _ in range(200):
            state = await h.query(TicketWorkflow.get_state)
            if "work" in state.active:
                break
            await asyncio.sleep(0.05)
        agreed = state.nodes["agree"].result
        assert state.nodes["agree"].outcome == "settled" and agreed["difference"] is None
        await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
        await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
        s = await h.execute_update(TicketWorkflow.complete, CompleteInput(actor=ENG, fields={"minutes": "120"}))
        final = s.nodes["final"]
        assert final.outcome == "exceeds_pre_settlement" and final.result["exceeds_pre_settlement"] is True
        assert Decimal(final.result["total"]) - Decimal(agreed["total"]) == Decimal(final.result["difference"]) > 0
        sup = ActorRef(id="sup-zhou", roles=["supervisor"], regions=["east"])
        for _ in range(200):
            s = await h.query(TicketWorkflow.get_state)
            if s.nodes.get("approve_extra") and s.nodes["approve_extra"].approvers:
                break
            await asyncio.sleep(0.05)
        s = await h.execute_update(TicketWorkflow.approve, ApproveInput(actor=sup, node="approve_extra"))
        assert s.status.value == "resolved" and s.path[-2:] == ["approve_extra", "done"]
