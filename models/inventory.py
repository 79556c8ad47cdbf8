"""Inventory data shapes: activity payloads (plain Pydantic, the only inventory shapes that travel
through Temporal), and the demo catalog and stock.

The tables are in ``models/inventory_tables.py``, the HTTP schemas of /inventory in
``models/inventory_http.py``.
"""

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from models.inventory_tables import Part, Warehouse

# Ticket and node ids go into ledger idempotency keys ``<ticket>:<node>:<line>.<allocation>:<kind>``.
_KEY_PART = r"^[^:\s]+$"


class MovementKind(StrEnum):
    RECEIPT = "receipt"  # on_hand += quantity
    RESERVATION = "reservation"  # reserved += quantity
    RELEASE = "release"  # reserved -= quantity
    CONSUMPTION = "consumption"  # on_hand -= quantity, reserved -= quantity
    ADJUSTMENT = "adjustment"  # on_hand += quantity (signed: a stock count correction)
    TRANSFER = "transfer"  # on_hand += quantity (signed: one row out, one row in)


class WarehouseKind(StrEnum):
    REGIONAL = "regional"
    PROJECT = "project"


class AlertStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


# ============================================================================================
# Activity payloads: inventory.reserve / inventory.consume / inventory.release
# ============================================================================================


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True)


class Location(_Payload):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class PartLine(_Payload):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, description="Whole units of the part's unit.")


class ReserveInput(_Payload):
    """Reserve ``lines`` for a ticket. Idempotent by (ticket_id, node_id): once a reservation for
    them has committed, calling again returns the same result and moves nothing."""

    ticket_id: str = Field(min_length=1, max_length=64, pattern=_KEY_PART)
    node_id: str = Field(min_length=1, max_length=100, pattern=_KEY_PART)
    region: str = Field(min_length=1, max_length=32)
    location: Location | None = Field(default=None, description="Site of the work: nearest warehouse first.")
    lines: list[PartLine] = Field(min_length=1, max_length=100)
    allow_partial: bool = Field(
        default=False,
        description="True: split lines across warehouses and reserve what there is. "
        "False: all or nothing, each line whole from one warehouse.",
    )
    warehouses: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Only these warehouses (e.g. a project's virtual stock). "
        "Default: every regional warehouse of the region.",
    )


class ReservationStatus(StrEnum):
    RESERVED = "reserved"  # every line in full
    PARTIAL = "partial"  # some reserved (allow_partial only), see shortages
    INSUFFICIENT = "insufficient"  # nothing reserved, see shortages


class Allocation(_Payload):
    line: int  # index into ReserveInput.lines
    sku: str
    warehouse: str
    quantity: int


class Shortage(_Payload):
    line: int
    sku: str
    requested: int
    missing: int


class ReserveResult(_Payload):
    ticket_id: str
    node_id: str
    status: ReservationStatus
    allocations: list[Allocation] = Field(default_factory=list)
    shortages: list[Shortage] = Field(default_factory=list)


class UsedPart(_Payload):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=0)


class ConsumeInput(_Payload):
    """Turn the reservation made at ``node_id`` into consumption of what was ``used``; whatever
    was reserved and not used goes back to stock. Using more than reserved is the non-retryable
    ``ConsumptionExceedsReservation``. Idempotent by (ticket_id, node_id)."""

    ticket_id: str = Field(min_length=1, max_length=64, pattern=_KEY_PART)
    node_id: str = Field(min_length=1, max_length=100, pattern=_KEY_PART, description="The reserve_parts node.")
    used: list[UsedPart] = Field(default_factory=list, max_length=100)


class StockQuantity(_Payload):
    sku: str
    warehouse: str
    quantity: int


class ConsumeResult(_Payload):
    """Totals in the ledger for the reservation: consumed, and released back to stock."""

    ticket_id: str
    node_id: str
    consumed: list[StockQuantity] = Field(default_factory=list)
    released: list[StockQuantity] = Field(default_factory=list)


class ReleaseInput(_Payload):
    """Release what is still reserved for the ticket (``node_id=None``: every node) — the
    cancel compensation. Idempotent; releasing nothing is fine."""

    ticket_id: str = Field(min_length=1, max_length=64, pattern=_KEY_PART)
    node_id: str | None = Field(default=None, max_length=100, pattern=_KEY_PART)


class NodeStockQuantity(StockQuantity):
    node_id: str


class ReleaseResult(_Payload):
    """Totals released back to stock for the ticket (or node) in the ledger; nothing is reserved
    for it afterwards."""

    ticket_id: str
    node_id: str | None
    released: list[NodeStockQuantity] = Field(default_factory=list)


# ============================================================================================
# Demo catalog and stock (``make run``; loaded by ``store/demo.py``)
# ============================================================================================

DEMO_PARTS = [
    Part(
        sku="FAN-CMP-120",
        name="Compressor cooling fan 120 mm",
        unit="pcs",
        unit_price=Decimal("185.00"),
        currency="CNY",
        reorder_point=5,
        reorder_qty=20,
    ),
    Part(
        sku="SNS-TEMP-PT100",
        name="Temperature sensor PT100",
        unit="pcs",
        unit_price=Decimal("68.50"),
        currency="CNY",
        reorder_point=10,
        reorder_qty=50,
    ),
    Part(
        sku="SEAL-DOOR-1800",
        name="Refrigerator door seal 1.8 m",
        unit="pcs",
        unit_price=Decimal("42.00"),
        currency="CNY",
        reorder_point=8,
        reorder_qty=30,
    ),
    Part(
        sku="RLY-START-220",
        name="Compressor start relay 220 V",
        unit="pcs",
        unit_price=Decimal("23.80"),
        currency="CNY",
        reorder_point=6,
        reorder_qty=24,
    ),
]

DEMO_WAREHOUSES = [
    Warehouse(code="WH-SH-PD", name="Shanghai Pudong", region="east", kind="regional", lat=31.2215, lon=121.5440),
    Warehouse(code="WH-SH-JD", name="Shanghai Jiading", region="east", kind="regional", lat=31.3747, lon=121.2655),
    Warehouse(code="WH-SZ-NS", name="Shenzhen Nanshan", region="south", kind="regional", lat=22.5333, lon=113.9304),
    Warehouse(code="WH-SZ-LG", name="Shenzhen Longgang", region="south", kind="regional", lat=22.7208, lon=114.2466),
]

# (warehouse, sku, quantity received once at load)
DEMO_STOCK = [
    ("WH-SH-PD", "FAN-CMP-120", 12),
    ("WH-SH-PD", "SNS-TEMP-PT100", 40),
    ("WH-SH-PD", "SEAL-DOOR-1800", 25),
    ("WH-SH-JD", "FAN-CMP-120", 8),
    ("WH-SH-JD", "SNS-TEMP-PT100", 15),
    ("WH-SH-JD", "RLY-START-220", 30),
    ("WH-SZ-NS", "FAN-CMP-120", 10),
    ("WH-SZ-NS", "SEAL-DOOR-1800", 20),
    ("WH-SZ-NS", "RLY-START-220", 18),
    ("WH-SZ-LG", "FAN-CMP-120", 6),
    ("WH-SZ-LG", "SNS-TEMP-PT100", 30),
    ("WH-SZ-LG", "SEAL-DOOR-1800", 12),
]
