"""HTTP schemas of /inventory (stock, movements, receipts, alerts, parts, warehouses)."""

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from models.inventory import AlertStatus, MovementKind, WarehouseKind


class ReceiptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    warehouse: str = Field(min_length=1, max_length=32, examples=["WH-SH-PD"])
    sku: str = Field(min_length=1, max_length=64, examples=["FAN-CMP-120"])
    quantity: int = Field(gt=0, le=1_000_000)
    note: str = Field(default="", max_length=500)


class StockLevelOut(BaseModel):
    warehouse: str
    region: str
    sku: str
    part_name: str
    unit: str
    on_hand: int
    reserved: int
    available: int
    reorder_point: int
    low: bool
    updated_at: datetime


class StockPage(BaseModel):
    items: list[StockLevelOut]
    next_offset: int | None = Field(description="Pass as offset for the next page; null at the end.")


class MovementOut(BaseModel):
    id: int
    idempotency_key: str
    kind: MovementKind
    warehouse: str
    sku: str
    quantity: int
    ticket_id: str | None
    node_id: str | None
    line: int | None
    allocation: int | None
    actor_id: str | None
    at: datetime
    note: str


class MovementPage(BaseModel):
    items: list[MovementOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page; null at the end.")


class ReceiptOut(BaseModel):
    movement: MovementOut
    stock: StockLevelOut


class AlertOut(BaseModel):
    id: int
    warehouse: str
    region: str
    sku: str
    part_name: str
    status: AlertStatus
    reorder_point: int
    available_at_open: int
    suggested_qty: int = Field(description="Reorder suggestion: up to reorder_point + the part's reorder_qty.")
    opened_at: datetime
    closed_at: datetime | None
    available_at_close: int | None
    notified_at: datetime | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_offset: int | None


class PartOut(BaseModel):
    sku: str
    name: str
    unit: str
    unit_price: Decimal = Field(description="Sent as a string: exact decimal.")
    currency: str
    reorder_point: int
    reorder_qty: int


class WarehouseOut(BaseModel):
    code: str
    name: str
    region: str
    kind: WarehouseKind
    lat: float
    lon: float
