"""Demo price rules for ``make run``: regions ``east`` and ``south``, CNY, 6 % VAT (exclusive).

A small service catalog for the preset ticket types (with ``REPAIR-COST``, the repair preset's
quoted ``repair_cost``), the demo parts, an urban premium in east (a lower-tier-city discount in
south), night / holiday / rush / travel surcharges, member levels silver / gold / platinum and
referral discounts, and a 3-way revenue split platform / provider / engineer.

``store.demo.load_pricing(db)`` publishes each region's rules as version ``DEMO_VERSION`` and
activates it when the region has no active rules yet or only an older demo version, so it is
idempotent and never undoes a version finance published since.
"""

from models.pricing import RegionPricing

DEMO_VERSION = "demo-2"  # demo-1 had no REPAIR-COST, holiday or platinum: load_pricing supersedes it

#: Which service code a preset ticket type usually bills (the settle node's default item).
DEMO_SERVICE_FOR_TICKET_TYPE = {
    "equipment_repair": "REPAIR-ONSITE",
    "installation": "INSTALL",
    "ecommerce_return": "RETURN-PICKUP",
    "complaint": "INSPECT",
    "general": "INSPECT",
}

# The parts of the pricing examples, and the SKUs of the demo inventory (models/inventory.py),
# so a ticket that consumed demo stock can be priced.
_PARTS = [
    {"sku": "FAN-120", "name": "Cooling fan 120 mm", "price": "185.00"},
    {"sku": "SENSOR-T1", "name": "Temperature sensor T1", "price": "68.50"},
    {"sku": "SEAL-D40", "name": "Door seal D40", "price": "42.00"},
    {"sku": "FAN-CMP-120", "name": "Compressor cooling fan 120 mm", "price": "185.00"},
    {"sku": "SNS-TEMP-PT100", "name": "Temperature sensor PT100", "price": "68.50"},
    {"sku": "SEAL-DOOR-1800", "name": "Refrigerator door seal 1.8 m", "price": "42.00"},
    {"sku": "RLY-START-220", "name": "Compressor start relay 220 V", "price": "23.80"},
]


def _rules(
    region: str, *, repair_base: str, repair_hourly: str, install: str, adjustments: list[dict[str, str]]
) -> RegionPricing:
    return RegionPricing.model_validate(
        {
            "region": region,
            "version": DEMO_VERSION,
            "currency": "CNY",
            "services": [
                {
                    "strategy": "hourly",
                    "code": "REPAIR-ONSITE",
                    "description": "On-site repair",
                    "base_fee": repair_base,
                    "hourly_rate": repair_hourly,
                    "increment_minutes": 15,
                    "included_minutes": 30,
                    "minimum_charge": "150",
                },
                {"strategy": "flat", "code": "INSTALL", "description": "Installation package", "price": install},
                {"strategy": "flat", "code": "INSPECT", "description": "Inspection visit", "price": "60"},
                {"strategy": "flat", "code": "RETURN-PICKUP", "description": "Return pick-up", "price": "25"},
                # the repair preset's required money field repair_cost, sent as the item's amount
                {"strategy": "quoted", "code": "REPAIR-COST", "description": "Repair (quoted)"},
            ],
            "parts": _PARTS,
            "adjustments": adjustments,
            "surcharges": [
                {"type": "percent", "code": "night", "description": "Night work", "when": "night", "percent": "30"},
                {
                    "type": "percent",
                    "code": "holiday",
                    "description": "Work on a holiday",
                    "when": "holiday",
                    "percent": "50",
                },
                {"type": "fixed", "code": "rush", "description": "Rush call-out", "when": "rush", "amount": "50"},
                {
                    "type": "distance",
                    "code": "travel",
                    "description": "Travel",
                    "per_km": "2.5",
                    "free_km": "10",
                    "increment_km": "1",
                },
            ],
            "discounts": {
                "member_levels": [
                    {"level": "silver", "percent": "5"},
                    {"level": "gold", "percent": "10"},
                    {"level": "platinum", "percent": "15"},
                ],
                "referral_tiers": [{"min_referrals": 3, "percent": "20"}, {"min_referrals": 5, "percent": "30"}],
                "combine": "best",
            },
            "tax": {"name": "VAT", "mode": "exclusive", "percent": "6"},
            "split": [
                {"party": "platform", "share": "0.2"},
                {"party": "provider", "share": "0.3"},
                {"party": "engineer", "share": "0.5"},
            ],
        }
    )


DEMO_PRICING: dict[str, RegionPricing] = {
    "east": _rules(
        "east",
        repair_base="80",
        repair_hourly="120",
        install="299",
        adjustments=[
            {"code": "urban", "description": "Urban premium", "when": "urban", "percent": "20"},
        ],
    ),
    "south": _rules(
        "south",
        repair_base="70",
        repair_hourly="110",
        install="279",
        adjustments=[
            {"code": "tier3", "description": "Lower-tier city", "when": "tier3_city", "percent": "-10"},
        ],
    ),
}
