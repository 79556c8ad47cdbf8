"""``reserve_parts`` and ``consume_parts``: spare parts for the ticket.

Reserving registers its compensation first (the node joins ``state.reservations`` before the
activity runs), so a cancelled ticket releases whatever was reserved, in reverse order.
Every activity here is idempotent by (ticket, node): retries move stock and write
statements exactly once.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.stock_alerts import LowStockCheck, LowStockResult
    from models.inventory import (
        ConsumeInput,
        ConsumeResult,
        Location,
        PartLine,
        ReleaseInput,
        ReleaseResult,
        ReserveInput,
        ReserveResult,
        UsedPart,
    )
    from models.template import ConsumePartsNode, ReservePartsNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run

STOCK_TIMEOUT = timedelta(seconds=30)
STOCK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def _lines(wf: Run, node: ReservePartsNode) -> list[PartLine]:
    if node.parts:
        return [PartLine(sku=p.sku, quantity=p.quantity) for p in node.parts]
    sku = wf.state.fields.get(node.sku_field or "")
    quantity = int(Decimal(str(wf.state.fields.get(node.quantity_field or "", 0) or 0)))
    return [PartLine(sku=sku, quantity=quantity)] if sku and quantity > 0 else []


async def reserve_parts(wf: Run, node: ReservePartsNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    lines = _lines(wf, node)
    if not lines:
        wf.close_node(state, "nothing_to_reserve")
        await wf.record("reserve_parts", SYSTEM, {"node": node.id, "outcome": "nothing to reserve"})
        return node.next
    site = wf.state.fields.get(node.location_field or "")
    location = Location(lat=site["lat"], lon=site["lon"]) if isinstance(site, dict) else None
    if node.id not in wf.state.reservations:
        wf.state.reservations.append(node.id)  # the compensation, registered before the step it undoes
    try:
        result: ReserveResult = await _reserve(wf, node, lines, location)
    except ActivityError as exc:  # e.g. UnknownPart: nothing was reserved
        reason = getattr(exc.cause, "message", str(exc.cause))
        wf.close_node(state, "failed")
        await wf.record("reserve_parts", SYSTEM, {"node": node.id, "outcome": "failed", "reason": reason})
        return node.on_insufficient or node.next
    state.result = result.model_dump(mode="json")
    outcome = result.status.value
    if result.allocations:
        await announce_low_stock(wf, node.id)
    wf.close_node(state, outcome)
    await wf.record(
        "reserve_parts", SYSTEM, {"node": node.id, "outcome": outcome, "shortages": state.result["shortages"]}
    )
    if outcome == "insufficient" and node.on_insufficient:
        return node.on_insufficient
    return node.next


async def _reserve(wf: Run, node: ReservePartsNode, lines: list[PartLine], location: Any) -> ReserveResult:
    return await workflow.execute_activity(  # type: ignore[no-any-return]
        "inventory.reserve",
        ReserveInput(
            ticket_id=wf.state.ticket_id,
            node_id=node.id,
            region=wf.state.region,
            location=location,
            lines=lines,
            allow_partial=node.allow_partial,
        ),
        result_type=ReserveResult,
        start_to_close_timeout=STOCK_TIMEOUT,
        retry_policy=STOCK_RETRY,
        summary=f"{node.id}: reserve " + ", ".join(f"{ln.quantity}×{ln.sku}" for ln in lines),
    )


async def consume_parts(wf: Run, node: ConsumePartsNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    reserved = wf.state.nodes.get(node.reservation)
    allocations = (reserved.result.get("allocations", []) if reserved else []) or []
    used = None
    if node.used_field and wf.state.fields.get(node.used_field) is not None:
        # Units actually used, for single-SKU reservations (sku_field/quantity_field): the
        # activity refuses more than was reserved (ConsumptionExceedsReservation).
        left = int(Decimal(str(wf.state.fields[node.used_field])))
        used = []
        for a in allocations:  # the quantities used, taken from the reservation in order
            take = min(left, a["quantity"])
            used.append(UsedPart(sku=a["sku"], quantity=take))
            left -= take
        if left > 0 and allocations:  # more than reserved: let the activity refuse it, loudly
            used.append(UsedPart(sku=allocations[-1]["sku"], quantity=left))
    else:
        used = [UsedPart(sku=a["sku"], quantity=a["quantity"]) for a in allocations]
    if not allocations:  # nothing was reserved (e.g. the ticket took another branch)
        wf.close_node(state, "nothing_reserved")
        await wf.record("consume_parts", SYSTEM, {"node": node.id, "outcome": "nothing reserved"})
        return node.next
    result: ConsumeResult = await workflow.execute_activity(
        "inventory.consume",
        ConsumeInput(ticket_id=wf.state.ticket_id, node_id=node.reservation, used=_merge(used)),
        result_type=ConsumeResult,
        start_to_close_timeout=STOCK_TIMEOUT,
        retry_policy=STOCK_RETRY,
        summary=f"{node.id}: consume parts reserved at {node.reservation}",
    )
    if node.reservation in wf.state.reservations:
        wf.state.reservations.remove(node.reservation)
    await announce_low_stock(wf, node.id)
    state.result = result.model_dump(mode="json")
    wf.close_node(state, "consumed")
    data = {"node": node.id, "consumed": state.result["consumed"], "released": state.result["released"]}
    await wf.record("consume_parts", SYSTEM, data)
    return node.next


async def announce_low_stock(wf: Run, node_id: str) -> None:
    """Tell warehouse staff about reorder points this movement crossed (once per crossing)."""
    try:
        await workflow.execute_activity(
            "inventory.announce_low_stock",
            LowStockCheck(ticket_id=wf.state.ticket_id),
            result_type=LowStockResult,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=5),
            summary=f"{node_id}: announce low stock",
        )
    except ActivityError as exc:  # a notification problem never blocks the repair
        await wf.record("low_stock_not_announced", SYSTEM, {"node": node_id, "reason": str(exc.cause)})


def _merge(used: list[UsedPart]) -> list[UsedPart]:
    total: dict[str, int] = {}
    for u in used:
        total[u.sku] = total.get(u.sku, 0) + u.quantity
    return [UsedPart(sku=sku, quantity=q) for sku, q in total.items()]


async def release_all(wf: Run) -> list[dict[str, Any]]:
    """Compensation on cancel: release every reservation still held, newest first."""
    released: list[dict[str, Any]] = []
    for node_id in reversed(list(wf.state.reservations)):
        result: ReleaseResult = await workflow.execute_activity(
            "inventory.release",
            ReleaseInput(ticket_id=wf.state.ticket_id, node_id=node_id),
            result_type=ReleaseResult,
            start_to_close_timeout=STOCK_TIMEOUT,
            retry_policy=STOCK_RETRY,
            summary=f"cancelled: release parts reserved at {node_id}",
        )
        wf.state.reservations.remove(node_id)
        released += result.model_dump(mode="json")["released"]
    return released
