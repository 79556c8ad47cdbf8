"""What a ``settle`` node sends the pricing activity (workflows/nodes/settle.py): the minutes
entered on the form, else the time on site from check-in to check-out; quoted amounts from money
fields (an amount the price list cannot take is left out); the template's pricing conditions."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from models.template import SettleNode
from models.ticket import NodeState, NodeStatus, Visit
from workflows.nodes.settle import _items

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def run_with(fields: dict, visits: list[tuple[int, int]]) -> SimpleNamespace:
    node = NodeState(id="repair", type="task", status=NodeStatus.DONE, started_at=T0)
    node.visits = [
        Visit(
            by="eng-li",
            checked_in_at=T0 + timedelta(minutes=a),
            lat=0,
            lon=0,
            checked_out_at=T0 + timedelta(minutes=b, seconds=30),
        )
        for a, b in visits
    ]
    state = SimpleNamespace(fields=fields, nodes={"repair": node})
    return SimpleNamespace(state=state, holds=lambda expr: expr == "true")


NODE = SettleNode(
    id="settle",
    hourly_service="REPAIR-ONSITE",
    minutes_field="minutes_worked",
    quoted={"REPAIR-COST": "repair_cost"},
    pricing_conditions={"rush": "true", "urban": "false"},
    next="done",
)


def test_time_on_site_when_no_minutes_were_entered():
    items = _items(run_with({}, [(0, 60), (120, 154)]), NODE)  # 60.5 + 34.5 minutes → 95 (rounded up)
    assert [(s.code, s.minutes) for s in items.services] == [("REPAIR-ONSITE", 95)]
    assert items.conditions == ("rush",)


def test_minutes_entered_win_and_quoted_amounts_are_sent():
    fields = {"minutes_worked": 40, "repair_cost": {"amount": "420.50", "currency": "CNY"}}
    items = _items(run_with(fields, [(0, 60)]), NODE)
    assert [(s.code, s.minutes, s.amount) for s in items.services] == [
        ("REPAIR-ONSITE", 40, None),
        ("REPAIR-COST", None, Decimal("420.50")),
    ]


def test_an_amount_the_price_list_cannot_take_is_left_out():
    items = _items(run_with({"repair_cost": {"amount": "1.1234567", "currency": "CNY"}}, []), NODE)
    assert [s.code for s in items.services] == ["REPAIR-ONSITE"]
