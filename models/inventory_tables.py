"""SQLModel tables of the spare-parts inventory. Never sent in a Temporal payload
(the payloads and HTTP schemas are in ``models/inventory.py``).

Balances live in ``stock_level`` (CHECK: 0 <= reserved <= on_hand); every change to them is
one row in the append-only ``stock_movement`` ledger, inserted in the same transaction, whose
unique ``idempotency_key`` makes a repeated operation a no-op.
"""

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

WAREHOUSE_KINDS = ("regional", "project")
MOVEMENT_KINDS = ("receipt", "reservation", "release", "consumption", "adjustment", "transfer")
ALERT_STATUSES = ("open", "closed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Numeric18_4(sa.TypeDecorator):
    """``NUMERIC(18, 4)`` as ``Decimal`` on PostgreSQL; exact decimal text on SQLite
    (whose NUMERIC would go through a float). Values are quantized to 4 places, half up,
    as PostgreSQL's NUMERIC does."""

    impl = sa.Numeric(18, 4)
    cache_ok = True
    _PLACES = Decimal("0.0001")

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(18, 4, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | str | None, dialect: sa.Dialect) -> Decimal | str | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money is Decimal, never float")
        exact = Decimal(value).quantize(self._PLACES, rounding=ROUND_HALF_UP)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Decimal | str | None, dialect: sa.Dialect) -> Decimal | None:
        return None if value is None else Decimal(value).quantize(self._PLACES)


class Numeric20_10(Numeric18_4):
    """``NUMERIC(20, 10)`` the same way: exchange rates."""

    impl = sa.Numeric(20, 10)
    cache_ok = True
    _PLACES = Decimal("0.0000000001")

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(20, 10, asdecimal=True))


# SQLite only autoincrements INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Part(SQLModel, table=True):
    """The parts catalog. ``reorder_point``/``reorder_qty`` drive low-stock alerts."""

    __tablename__ = "part"
    __table_args__ = (
        sa.CheckConstraint("unit_price >= 0", name="ck_part_unit_price"),
        sa.CheckConstraint("reorder_point >= 0", name="ck_part_reorder_point"),
        sa.CheckConstraint("reorder_qty >= 0", name="ck_part_reorder_qty"),
    )

    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    unit: str = Field(default="pcs", max_length=16)
    unit_price: Decimal = Field(sa_type=Numeric18_4)
    currency: str = Field(default="CNY", max_length=3)
    reorder_point: int = 0
    reorder_qty: int = 0


class Warehouse(SQLModel, table=True):
    """A regional warehouse, or a project's virtual stock (``kind='project'``: reserved from only
    when a reservation names it)."""

    __tablename__ = "warehouse"
    __table_args__ = (sa.CheckConstraint(_in("kind", WAREHOUSE_KINDS), name="ck_warehouse_kind"),)

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    region: str = Field(max_length=32, foreign_key="region.code", index=True)
    kind: str = Field(default="regional", max_length=16)
    lat: float
    lon: float


class StockLevel(SQLModel, table=True):
    """On-hand and reserved quantity of one part in one warehouse; available = on_hand - reserved."""

    __tablename__ = "stock_level"
    __table_args__ = (
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_level_on_hand"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_level_reserved"),
        sa.CheckConstraint("reserved <= on_hand", name="ck_stock_level_reserved_le_on_hand"),
    )

    warehouse: str = Field(primary_key=True, max_length=32, foreign_key="warehouse.code")
    sku: str = Field(primary_key=True, max_length=64, foreign_key="part.sku", index=True)
    on_hand: int = 0
    reserved: int = 0
    updated_at: datetime = Field(sa_type=UTC_DATETIME)


class StockMovement(SQLModel, table=True):
    """The append-only ledger: one row per balance change, never updated or deleted.

    ``quantity`` is positive for receipt/reservation/release/consumption (the kind says the
    direction) and a signed change of on_hand for adjustment/transfer. Ticket movements carry
    ``ticket_id``, ``node_id`` (the reserve_parts node), ``line`` (index in the request) and
    ``allocation`` (index of the warehouse split within the line).
    """

    __tablename__ = "stock_movement"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", MOVEMENT_KINDS), name="ck_stock_movement_kind"),
        sa.CheckConstraint("quantity <> 0", name="ck_stock_movement_quantity"),
        sa.Index("ix_stock_movement_ticket_node", "ticket_id", "node_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    idempotency_key: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=16)
    warehouse: str = Field(max_length=32, foreign_key="warehouse.code", index=True)
    sku: str = Field(max_length=64, foreign_key="part.sku", index=True)
    quantity: int
    ticket_id: str | None = Field(default=None, max_length=64)
    node_id: str | None = Field(default=None, max_length=100)
    line: int | None = None
    allocation: int | None = None
    actor_id: str | None = Field(default=None, max_length=64)
    at: datetime = Field(sa_type=UTC_DATETIME)
    note: str = Field(default="", max_length=500)


class StockAlert(SQLModel, table=True):
    """Low stock in one warehouse: opened when availability falls below the part's reorder point,
    closed when it is back at or above it. At most one open alert per (warehouse, sku)."""

    __tablename__ = "stock_alert"
    __table_args__ = (
        sa.CheckConstraint(_in("status", ALERT_STATUSES), name="ck_stock_alert_status"),
        sa.Index(
            "uq_stock_alert_open",
            "warehouse",
            "sku",
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    warehouse: str = Field(max_length=32, foreign_key="warehouse.code", index=True)
    sku: str = Field(max_length=64, foreign_key="part.sku")
    status: str = Field(default="open", max_length=8, index=True)
    reorder_point: int
    available_at_open: int
    suggested_qty: int
    opened_at: datetime = Field(sa_type=UTC_DATETIME)
    closed_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    available_at_close: int | None = None
    # Set by the notifications module once it has told someone.
    notified_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
