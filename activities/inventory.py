"""Spare-parts activities: reserve, consume and release parts for a ticket. The transactions —
conditional updates, the idempotent ledger, the per-ticket lock, low-stock alerts — are
``store/inventory.py``'s; the rules (warehouse choice, usage split, answers) ``domain/stock.py``'s.

Insufficient stock is a normal answer (``status='insufficient'``), not an error. Business errors
are non-retryable ``ApplicationError``s: ``UnknownPart``, ``ConsumptionExceedsReservation``.
"""

from temporalio import activity

from activities.resources import database
from models import metrics
from models.inventory import ConsumeInput, ConsumeResult, ReleaseInput, ReleaseResult, ReserveInput, ReserveResult
from store import inventory


@activity.defn(name="inventory.reserve")
async def reserve_parts(inp: ReserveInput) -> ReserveResult:
    """Reserve a ticket's parts from the nearest warehouses of its region that have them. Counted
    (``ticketflow_stock_reservations``) by region and result once it committed; the reservation is
    idempotent, the count at least once (a retry after a lost reply counts again)."""
    result = await inventory.reserve(database(), inp)
    metrics.STOCK_RESERVATIONS.labels(inp.region, result.status.value).inc()
    return result


@activity.defn(name="inventory.consume")
async def consume_parts(inp: ConsumeInput) -> ConsumeResult:
    """Consume what was used of a reservation; release the rest."""
    return await inventory.consume(database(), inp)


@activity.defn(name="inventory.release")
async def release_parts(inp: ReleaseInput) -> ReleaseResult:
    """Release everything still reserved for a ticket (or one node): the cancel compensation."""
    return await inventory.release(database(), inp)
