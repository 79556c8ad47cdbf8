"""Low-stock notifications: tell the region's warehouse staff once per crossing.

The inventory activities open a ``stock_alert`` when availability falls below the reorder
point (one open alert per warehouse and part). This activity sends each open alert that has
not been announced yet through ``notify.send``'s outbox (de-duplicated by the alert id) and
stamps ``notified_at``; the workflow calls it after every reservation and consumption.
"""

from pydantic import BaseModel
from temporalio import activity

from activities.notify import send_notification
from activities.resources import database
from models.notifications import NotifyInput, TicketBrief
from store import inventory


class LowStockCheck(BaseModel):
    ticket_id: str  # the ticket whose stock movement may have crossed a reorder point


class LowStockResult(BaseModel):
    announced: list[int]  # alert ids


@activity.defn(name="inventory.announce_low_stock")
async def announce_low_stock(check: LowStockCheck) -> LowStockResult:
    db = database()
    pending = await inventory.unannounced_alerts(db)
    announced: list[int] = []
    for alert, warehouse in pending:
        text = (
            f"{alert.sku} at {warehouse.name}: {alert.available_at_open} available, below the reorder point "
            f"{alert.reorder_point}; suggested order: {alert.suggested_qty}"
        )
        await send_notification(
            NotifyInput(
                dedup_key=f"stock-alert-{alert.id}",
                event="low_stock",
                urgency="high",
                ticket=TicketBrief(id=check.ticket_id, title=f"Low stock: {alert.sku}", region=warehouse.region),
                recipients=["role:warehouse"],
                text=text,
            )
        )
        await inventory.mark_announced(db, alert.id)
        announced.append(alert.id or 0)
    return LowStockResult(announced=announced)
