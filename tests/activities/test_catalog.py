"""The plug-in activity catalog and its worked example."""

import uuid

from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.catalog import catalog
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
