"""Worked example of a plug-in activity (see docs/writing-activities.md).

A template's ``action`` node calls it by name::

    - id: request_parts
      type: action
      activity: purchasing.create_request
      inputs: {ticket_id: ticket_id, sku: part_sku, quantity: part_quantity, reason: '"out of stock"'}
      outputs: {purchase_request_id: request_id}
      next: wait_for_parts
"""

from pydantic import BaseModel, Field
from temporalio import activity

from activities.catalog import ticket_activity
from activities.resources import database
from store import purchasing


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
    row = await purchasing.request_once(database(), request.ticket_id, request.sku, request.quantity, request.reason)
    activity.logger.info("purchase request %s for %s × %s", row.id, request.quantity, request.sku)
    return PurchaseRequestOut(request_id=row.id or 0, status=row.status)
