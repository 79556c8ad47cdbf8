"""``settle``: price the ticket with its region's rules and persist the statement.

The ``settlement.settle`` activity is idempotent by (ticket, settlement version, kind): a
retry returns the stored statement. Parts are those the ticket consumed. Over budget, or a
final amount above the pre-settlement agreed before the work, the ticket goes to
``on_over_budget`` (an approval path) when the template names one. A pricing
error leaves the node waiting for a ``retry_settlement`` event (after the rules are fixed).
"""

import math
from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from models.pricing import PartItem, ServiceItem
    from models.settlement import SettleContext, SettleInput, SettleItems, SettlementKind, SettleResult
    from models.template import SettleNode
    from models.ticket import SYSTEM, NodeStatus
    from workflows.protocol import Run

RETRY_EVENT = "retry_settlement"


def _items(wf: Run, node: SettleNode) -> SettleItems:
    services = [ServiceItem(code=code) for code in node.services]
    if node.hourly_service:
        entered = wf.state.fields.get(node.minutes_field or "")
        # The minutes entered on the form, else the time on site (check-in to check-out).
        minutes = int(Decimal(str(entered))) if entered not in (None, "") else _minutes_on_site(wf)
        services.append(ServiceItem(code=node.hourly_service, minutes=minutes))
    used: dict[str, int] = {}
    for other in wf.state.nodes.values():
        if other.type == "consume_parts":
            for c in other.result.get("consumed", []):
                used[c["sku"]] = used.get(c["sku"], 0) + int(c["quantity"])
    for code, field in sorted(node.quoted.items()):
        value = wf.state.fields.get(field)
        if isinstance(value, dict) and value.get("amount") not in (None, ""):
            try:  # intake bounds money fields; an amount the price list cannot take is left out
                services.append(ServiceItem(code=code, amount=Decimal(str(value["amount"]))))
            except (ValidationError, ArithmeticError):
                continue
    parts = [PartItem(sku=sku, quantity=Decimal(q)) for sku, q in sorted(used.items()) if q > 0]
    conditions = tuple(name for name, when in sorted(node.pricing_conditions.items()) if wf.holds(when))
    return SettleItems(services=tuple(services), parts=tuple(parts), conditions=conditions)


def _minutes_on_site(wf: Run) -> int:
    """Whole minutes (rounded up) between each check-in and its check-out, over every task."""
    seconds = sum(
        (v.checked_out_at - v.checked_in_at).total_seconds()
        for n in wf.state.nodes.values()
        for v in n.visits
        if v.checked_out_at is not None
    )
    return math.ceil(seconds / 60)


def _context(wf: Run, node: SettleNode) -> SettleContext:
    """The ticket facts the activity prices with: the customer and asset, who did the work and
    where (travel distance), and when (night and holiday conditions)."""
    done = [n for n in wf.state.nodes.values() if n.type == "task" and n.completed_at is not None]
    last = max(done, key=lambda n: n.completed_at or workflow.now(), default=None)
    site = wf.state.fields.get(node.location_field or "") if node.location_field else None
    lat, lon = (site.get("lat"), site.get("lon")) if isinstance(site, dict) else (None, None)
    return SettleContext(
        customer_id=wf.state.customer_id,
        asset_id=wf.state.asset_id,
        engineer_id=last.assignee if last is not None else None,
        site_lat=lat,
        site_lon=lon,
        worked_at=last.completed_at if last is not None and last.completed_at else workflow.now(),
    )


async def run(wf: Run, node: SettleNode, branch: str | None) -> str:
    state, _ = wf.open_node(node, branch, NodeStatus.WAITING)
    version = wf.state.path.count(node.id)  # settling again after a reopen is a new version
    request = SettleInput(
        ticket_id=wf.state.ticket_id,
        ticket_version=max(1, version),
        region=wf.state.region,
        ticket_type=wf.state.ticket_type,
        kind=SettlementKind(node.kind),
        request=_items(wf, node),
        budget=node.budget,
        budget_tolerance_percent=node.budget_tolerance_percent,
        context=_context(wf, node),
    )
    while True:
        seen = len(wf.signals)
        try:
            result: SettleResult = await workflow.execute_activity(
                "settlement.settle",
                request,
                result_type=SettleResult,
                start_to_close_timeout=timedelta(seconds=60),
                summary=f"{node.id}: {node.kind} settlement",
            )
            break
        except ActivityError as exc:
            cause = exc.cause
            reason = getattr(cause, "message", str(cause))
            await wf.record(
                "settle_failed", SYSTEM, {"node": node.id, "error": getattr(cause, "type", None), "reason": reason}
            )

            def retry_requested(seen: int = seen) -> bool:  # a retry event since this attempt
                return any(s.name == RETRY_EVENT for s in wf.signals[seen:])

            await wf.wait(retry_requested)
    state.result = {
        "statement_id": result.statement_id,
        "total": str(result.total),
        "currency": result.currency,
        "over_budget": result.over_budget,
        "budget_reason": result.budget_reason,
        "difference": str(result.difference) if result.difference is not None else None,
        "exceeds_pre_settlement": result.exceeds_pre_settlement,
    }
    # Over budget, or above the amount agreed before the work: someone must approve.
    reason = (
        "over_budget" if result.over_budget else "exceeds_pre_settlement" if result.exceeds_pre_settlement else None
    )
    escalate = reason is not None and node.on_over_budget is not None
    wf.close_node(state, reason if escalate else "settled")
    await wf.record("settle", SYSTEM, {"node": node.id, **state.result})
    return node.on_over_budget if escalate and node.on_over_budget else node.next
