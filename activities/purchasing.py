"""Worked example of a plug-in activity (see docs/writing-activities.md).

A template's ``action`` node calls it by name::

    - id: request_parts
      type: action
      activity: purchasing.create_request
      inputs: {ticket_id: ticket_id, sku: part_sku, quantity: part_quantity, reason: '"out of stock"'}
      outputs: {purchase_request_id: request_id}
      next: wait_for_parts
"""

from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlmodel import select
from temporalio import activity

from activities.catalog import ticket_activity
from activities.resources import database
from models.db import upsert_statement
from models.tables import PurchaseRequest


class PurchaseRequestIn(BaseModel):
    ticket_id: str
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    reason: str = ""


class PurchaseRequestOut(BaseModel):
    request_id: int
    status: str


@ticket_activity("purchasing.create_request", "Ask purchasing for spare parts a ticket needs")
async def create_request(request: PurchaseRequestIn) -> PurchaseRequestOut:
    """Idempotent by its business key (ticket, SKU): a retry returns the same request."""
    db = database()
    insert = upsert_statement(db.engine.dialect.name, PurchaseRequest.__table__).values(
        ticket_id=request.ticket_id,
        sku=request.sku,
        quantity=request.quantity,
        reason=request.reason,
        status="requested",
        created_at=datetime.now(UTC),
    )
    async with db.session() as session:
        await session.exec(insert.on_conflict_do_nothing(index_elements=["ticket_id", "sku"]))  # type: ignore[call-overload]
        await session.commit()
        row = (
            await session.exec(
                select(PurchaseRequest).where(
                    PurchaseRequest.ticket_id == request.ticket_id, PurchaseRequest.sku == request.sku
                )
            )
        ).one()
    activity.logger.info("purchase request %s for %s × %s", row.id, request.quantity, request.sku)
    return PurchaseRequestOut(request_id=row.id or 0, status=row.status)
