"""SQLModel tables of the customer side: customers and their contact identities, assets
(devices and installations), service contracts, SLA tiers, orders from the business systems and
the exchange-rate table settlements take their snapshot from. Queried by ``store/customers.py``
and ``store/assets.py``; never sent in a Temporal payload. See docs/customers.md.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.inventory_tables import Numeric18_4, Numeric20_10
from models.tables import UTC_DATETIME

CUSTOMER_KINDS = ("person", "company")
# How a customer is reached and recognised; ``value`` is normalised (models/customers.py).
IDENTITY_KINDS = ("phone", "email", "wechat_openid", "wechat_unionid", "app_user")
# What a warranty or contract pays for.
COVERAGE = ("labour", "parts", "labour_and_parts")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Customer(SQLModel, table=True):
    """A person or a company the service is for. A merged record keeps its row (and its tickets,
    assets, orders) with ``merged_into`` pointing at the survivor; reads follow the pointer."""

    __tablename__ = "customer"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", CUSTOMER_KINDS), name="ck_customer_kind"),
        sa.Index("ix_customer_region_name", "region", "name"),
    )

    id: str = Field(primary_key=True, max_length=32)  # "cus_<hex>"
    kind: str = Field(default="person", max_length=16)
    name: str = Field(max_length=200)
    region: str = Field(max_length=32, foreign_key="region.code", index=True)
    member_level: str | None = Field(default=None, max_length=32)  # a level of the region's price rules
    referral_code: str = Field(max_length=32, unique=True)
    referred_by: str | None = Field(default=None, max_length=32, index=True)  # a customer id
    # channel → may we message them there ({"sms": true, "wechat": false, …}); absent: no.
    consent: dict[str, bool] = Field(default_factory=dict, sa_type=sa.JSON)
    billing_currency: str | None = Field(default=None, max_length=3)  # None: the price list's
    language: str = Field(default="zh", max_length=8)
    notes: str = Field(default="", max_length=2000)
    merged_into: str | None = Field(default=None, max_length=32, index=True)
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)


class CustomerIdentity(SQLModel, table=True):
    """One way to recognise a customer (a phone number, a WeChat openid…). ``(kind, value)`` is
    unique: the same phone or openid is always the same customer."""

    __tablename__ = "customer_identity"
    __table_args__ = (
        sa.UniqueConstraint("kind", "value", name="uq_customer_identity_kind_value"),
        sa.CheckConstraint(_in("kind", IDENTITY_KINDS), name="ck_customer_identity_kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(max_length=32, foreign_key="customer.id", index=True)
    kind: str = Field(max_length=16)
    value: str = Field(max_length=200)
    verified: bool = False
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class SlaTier(SQLModel, table=True):
    """A service level a contract buys: its targets replace the template's on covered tickets."""

    __tablename__ = "sla_tier"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    response_minutes: int | None = None
    resolution_minutes: int | None = None


class Asset(SQLModel, table=True):
    """A device or an installation a customer owns, where it stands, and its warranty. The QR
    code on the machine carries ``qr_code`` (random, unguessable; the serial is printed beside it)."""

    __tablename__ = "asset"
    __table_args__ = (sa.CheckConstraint(_in("warranty_covers", COVERAGE), name="ck_asset_warranty_covers"),)

    id: str = Field(primary_key=True, max_length=32)  # "ast_<hex>"
    customer_id: str = Field(max_length=32, foreign_key="customer.id", index=True)
    region: str = Field(max_length=32, foreign_key="region.code", index=True)
    serial: str = Field(max_length=64, unique=True)
    model: str = Field(max_length=100)
    qr_code: str = Field(max_length=64, unique=True)
    site_address: str = Field(default="", max_length=500)
    lat: float | None = None
    lon: float | None = None
    installed_on: date | None = None
    warranty_end: date | None = None  # covered up to and including this day
    warranty_covers: str = Field(default="labour_and_parts", max_length=16)
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class ServiceContract(SQLModel, table=True):
    """A service contract: what it covers, its SLA tier, when it is valid; for one asset, or for
    every asset of the customer when ``asset_id`` is None."""

    __tablename__ = "service_contract"
    __table_args__ = (
        sa.CheckConstraint("valid_to >= valid_from", name="ck_service_contract_validity"),
        sa.Index("ix_service_contract_customer_valid", "customer_id", "valid_to"),
    )

    id: str = Field(primary_key=True, max_length=32)  # "ctr_<hex>"
    number: str = Field(max_length=64, unique=True)  # the contract number people quote
    customer_id: str = Field(max_length=32, foreign_key="customer.id")
    asset_id: str | None = Field(default=None, max_length=32, foreign_key="asset.id", index=True)
    covers_labour: bool = False
    covers_parts: bool = False
    sla_tier: str | None = Field(default=None, max_length=32, foreign_key="sla_tier.code")
    valid_from: date
    valid_to: date  # valid up to and including this day
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class CustomerOrder(SQLModel, table=True):
    """An order a business system (ERP, shop) told us about: the customer 360 shows the recent ones."""

    __tablename__ = "customer_order"
    __table_args__ = (
        sa.UniqueConstraint("source", "external_ref", name="uq_customer_order_source_ref"),
        sa.Index("ix_customer_order_customer_placed", "customer_id", "placed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(max_length=32, foreign_key="customer.id")
    source: str = Field(max_length=32)  # erp, ecommerce…
    external_ref: str = Field(max_length=200)
    placed_at: datetime = Field(sa_type=UTC_DATETIME)
    status: str = Field(default="", max_length=32)
    amount: Decimal | None = Field(default=None, sa_type=Numeric18_4)
    currency: str | None = Field(default=None, max_length=3)
    summary: str = Field(default="", max_length=500)
    asset_id: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class ExchangeRateRow(SQLModel, table=True):
    """The rate table: 1 ``base`` = ``rate`` ``quote`` from ``as_of``. A settlement in another
    currency than the price list takes the newest row of each pair as its snapshot."""

    __tablename__ = "exchange_rate"
    __table_args__ = (sa.UniqueConstraint("base", "quote", "as_of", name="uq_exchange_rate_pair_as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    base: str = Field(max_length=3)
    quote: str = Field(max_length=3)
    rate: Decimal = Field(sa_type=Numeric20_10)
    as_of: datetime = Field(sa_type=UTC_DATETIME)
    source: str = Field(default="", max_length=64)
