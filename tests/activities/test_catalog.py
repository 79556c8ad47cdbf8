"""The plug-in activity catalog and its worked example."""

import asyncio
import uuid
from datetime import timedelta
from typing import get_type_hints

import pytest
from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.catalog import catalog, with_heartbeats
from activities.purchasing import PurchaseRequestIn, create_request
from activities.registry import ACTIVITIES
from models.db import Database
from models.tables import PurchaseRequest


def test_catalog_lists_the_example_with_its_models():
    entry = catalog()["purchasing.create_request"]
    assert entry.input_model is PurchaseRequestIn
    assert set(entry.output_model.model_fields) == {"request_id", "status"}
    names = {fn.__temporal_activity_definition.name for fn in ACTIVITIES}
    assert {"purchasing.create_request", "projection.record_ticket_changes", "directory.resolve_people"} <= names


async def test_purchase_request_is_idempotent_by_ticket_and_sku(db: Database):
    ticket = f"T{uuid.uuid4().hex[:10]}"
    env = ActivityEnvironment()
    first = await env.run(create_request, PurchaseRequestIn(ticket_id=ticket, sku="FAN-120", quantity=2))
    retry = await env.run(create_request, PurchaseRequestIn(ticket_id=ticket, sku="FAN-120", quantity=2))
    assert first == retry and first.status == "requested"
    async with db.session() as s:
        rows = (await s.exec(select(PurchaseRequest).where(PurchaseRequest.ticket_id == ticket))).all()
    assert [(r.sku, r.quantity) for r in rows] == [("FAN-120", 2)]


async def test_a_catalog_activity_heartbeats_while_it_runs_and_is_cancelled_with_its_activity():
    """``with_heartbeats``: a heartbeat every ``every`` while the function runs, its result as is;
    cancelling the activity cancels the function (nothing keeps running after a cancel)."""
    calls: list[int] = []
    cancelled = asyncio.Event()

    async def slow(x: int) -> int:
        try:
            await asyncio.sleep(0.35)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x * 2

    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: calls.append(1)
    assert await env.run(with_heartbeats(slow, timedelta(seconds=0.05)), 21) == 42
    assert len(calls) >= 4  # about one per 50 ms over 350 ms

    env = ActivityEnvironment()
    running = asyncio.ensure_future(env.run(with_heartbeats(slow, timedelta(seconds=0.05)), 1))
    await asyncio.sleep(0.1)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert cancelled.is_set()


def test_the_catalog_registers_the_heartbeating_function_with_the_original_signature():
    entry = catalog()["purchasing.create_request"]
    assert entry.fn.__wrapped__ is not None  # with_heartbeats around the module's function
    assert get_type_hints(entry.fn)["request"] is PurchaseRequestIn  # what Temporal converts the argument to
