"""HTTP schemas of /assets, /contracts, /sla-tiers, /exchange-rates and the customer 360
(``GET /customers/{id}/360``). See docs/assets.md.

Bodies bound every field at the edge: serials and contract numbers are codes (no spaces, no
slashes: they appear in paths), coordinates are in range and given together, dates are ordered,
SLA minutes are positive and at most a year, an exchange rate is a decimal string above zero.
References to other rows (the customer is visible, the asset is theirs, the tier exists) are
checked by ``api/services/assets.py``.
"""

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from models.common import Priority, TicketStatus
from models.pricing import CURRENCIES, ExactDecimal, Rate

Coverage = Literal["labour", "parts", "labour_and_parts"]
# Printed on a plate and spoken on the phone: letters, digits, ".", "_", "-".
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
Serial = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=CODE_PATTERN)]
ContractNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=CODE_PATTERN)
]
TierCode = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
RecordId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
RegionCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
# Dates people type: a typo of year 20256 or 0025 is an error, not a warranty for ever.
Day = Annotated[date, Field(ge=date(1970, 1, 1), le=date(2199, 12, 31))]
MAX_SLA_MINUTES = 366 * 24 * 60  # a year
Minutes = Annotated[int, Field(ge=1, le=MAX_SLA_MINUTES)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _coordinates_together(lat: float | None, lon: float | None) -> None:
    if (lat is None) != (lon is None):
        raise ValueError("give lat and lon together, or neither")


def _warranty_after_install(installed_on: date | None, warranty_end: date | None) -> None:
    if installed_on is not None and warranty_end is not None and warranty_end < installed_on:
        raise ValueError("warranty_end is before installed_on")


# --- assets ---


class AssetFields(_Body):
    """A whole asset but its customer: what a PATCH must still satisfy once merged into the stored one."""

    serial: Serial = Field(examples=["CMP-2024-00017"])
    model: str = Field(min_length=1, max_length=100, examples=["Carrier 30XA-252"])
    region: RegionCode = Field(examples=["east"])
    site_address: str = Field(default="", max_length=500)
    lat: Latitude | None = None
    lon: Longitude | None = Field(default=None, description="With lat, or neither")
    installed_on: Day | None = None
    warranty_end: Day | None = Field(default=None, description="Covered up to and including this day")
    warranty_covers: Coverage = "labour_and_parts"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _coordinates_together(self.lat, self.lon)
        _warranty_after_install(self.installed_on, self.warranty_end)
        return self


class AssetCreate(_Body):
    """The body of ``POST /assets``. ``region`` left out: the customer's."""

    customer_id: RecordId
    serial: Serial = Field(examples=["CMP-2024-00017"])
    model: str = Field(min_length=1, max_length=100, examples=["Carrier 30XA-252"])
    region: RegionCode | None = Field(default=None, description="Where it stands; omitted: the customer's region")
    site_address: str = Field(default="", max_length=500)
    lat: Latitude | None = None
    lon: Longitude | None = Field(default=None, description="With lat, or neither")
    installed_on: Day | None = None
    warranty_end: Day | None = Field(default=None, description="Covered up to and including this day")
    warranty_covers: Coverage = "labour_and_parts"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _coordinates_together(self.lat, self.lon)
        _warranty_after_install(self.installed_on, self.warranty_end)
        return self


class AssetPatch(_Body):
    """The body of ``PATCH /assets/{id}``: the fields to change (null clears the optional ones).
    The customer and the QR code do not change here."""

    serial: Serial | None = None
    model: str | None = Field(default=None, min_length=1, max_length=100)
    region: RegionCode | None = None
    site_address: str | None = Field(default=None, max_length=500)
    lat: Latitude | None = None
    lon: Longitude | None = None
    installed_on: Day | None = None
    warranty_end: Day | None = None
    warranty_covers: Coverage | None = None

    @field_validator("serial", "model", "region", "site_address", "warranty_covers")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class WarrantyStatus(BaseModel):
    in_warranty: bool = Field(description="Today (the asset region's date) is on or before warranty_end")
    until: date | None = Field(description="warranty_end")
    covers: Coverage | None = Field(description="What the warranty pays for, while in warranty")
    days_left: int | None = Field(
        description="Days from today to warranty_end (0: its last day); null: not in warranty"
    )


class ContractStatus(BaseModel):
    """The valid contract covering an asset today: the one covering most, then valid longest."""

    id: str
    number: str
    coverage: Coverage | None = Field(description="What it pays for; null: an SLA-only contract")
    covers_labour: bool
    covers_parts: bool
    sla_tier: str | None
    response_minutes: int | None
    resolution_minutes: int | None
    valid_to: date


class AssetOut(BaseModel):
    id: str
    customer_id: str = Field(description="The customer (the record it was merged into, if it was)")
    region: str
    serial: str
    model: str
    qr_code: str = Field(description="What the QR sticker on the machine carries (random, unguessable)")
    site_address: str
    lat: float | None
    lon: float | None
    installed_on: date | None
    warranty_end: date | None
    warranty_covers: Coverage
    created_at: datetime
    warranty: WarrantyStatus
    contract: ContractStatus | None


class AssetPage(BaseModel):
    items: list[AssetOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class RepairTicket(BaseModel):
    """One ticket of an asset's repair history."""

    id: str
    ticket_type: str
    title: str
    status: TicketStatus
    priority: Priority
    region: str
    assignee: str | None
    created_at: datetime
    closed_at: datetime | None
    satisfaction: int | None


class RepairHistoryPage(BaseModel):
    items: list[RepairTicket]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null on the last page.")


# --- contracts ---


class ContractCreate(_Body):
    """The body of ``POST /contracts``: for one asset of the customer, or (``asset_id`` null) for all of them."""

    number: ContractNumber = Field(examples=["SC-2026-0042"])
    customer_id: RecordId
    asset_id: RecordId | None = Field(default=None, description="One asset of the customer; null: all their assets")
    covers_labour: bool = False
    covers_parts: bool = False
    sla_tier: TierCode | None = Field(
        default=None, description="An existing SLA tier; its targets replace the template's"
    )
    valid_from: Day
    valid_to: Day = Field(description="Valid up to and including this day; not before valid_from")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class ContractPatch(_Body):
    """The body of ``PATCH /contracts/{id}``: extend (or shorten) its validity, change its coverage
    or tier (null: none). The customer, the asset and the number do not change."""

    covers_labour: bool | None = None
    covers_parts: bool | None = None
    sla_tier: TierCode | None = None
    valid_from: Day | None = None
    valid_to: Day | None = None

    @field_validator("covers_labour", "covers_parts", "valid_from", "valid_to")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class ContractOut(BaseModel):
    id: str
    number: str
    customer_id: str
    asset_id: str | None
    covers_labour: bool
    covers_parts: bool
    coverage: Coverage | None
    sla_tier: str | None
    valid_from: date
    valid_to: date
    created_at: datetime


class ContractPage(BaseModel):
    items: list[ContractOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


# --- SLA tiers ---


class SlaTierIn(_Body):
    """The body of ``PUT /sla-tiers/{code}``: at least one target."""

    name: str = Field(min_length=1, max_length=200, examples=["Gold: 2 h response, 8 h resolution"])
    response_minutes: Minutes | None = Field(default=None, examples=[120])
    resolution_minutes: Minutes | None = Field(default=None, examples=[480])

    @model_validator(mode="after")
    def _a_target(self) -> Self:
        if self.response_minutes is None and self.resolution_minutes is None:
            raise ValueError("give response_minutes, resolution_minutes or both")
        return self


class SlaTierOut(BaseModel):
    code: str
    name: str
    response_minutes: int | None
    resolution_minutes: int | None


# --- exchange rates ---


class ExchangeRateIn(_Body):
    """1 ``base`` = ``rate`` ``quote`` from ``as_of``. The rate is a decimal string."""

    base: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])
    quote: str = Field(pattern=r"^[A-Z]{3}$", examples=["CNY"])
    rate: Annotated[Rate, Field(gt=0)] = Field(examples=["7.1234"])
    as_of: AwareDatetime
    source: str = Field(default="", max_length=64, examples=["PBOC fixing"])

    @field_validator("base", "quote")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"not a currency the pricing engine knows ({', '.join(CURRENCIES)})")
        return value

    @model_validator(mode="after")
    def _a_pair(self) -> Self:
        if self.base == self.quote:
            raise ValueError("base and quote are the same currency")
        return self


class ExchangeRateOut(BaseModel):
    id: int
    base: str
    quote: str
    rate: ExactDecimal
    as_of: datetime
    source: str


# --- the customer 360 ---


class CustomerCard(BaseModel):
    id: str
    name: str
    kind: str
    region: str
    member_level: str | None
    referral_code: str
    referred_by: str | None
    referral_count: int = Field(description="Customers referred by this one (any of its merged records)")
    consent: dict[str, bool] = Field(description="channel → may we message them there")
    merged_records: list[str] = Field(description="Records merged into this one: their history is shown here too")


class IdentityOut(BaseModel):
    kind: str
    value: str
    verified: bool
    customer_id: str = Field(description="The record holding it (a merged one, or the customer itself)")


class PastTicket(BaseModel):
    id: str
    ticket_type: str
    title: str
    status: TicketStatus
    asset_id: str | None
    created_at: datetime
    closed_at: datetime | None
    satisfaction: int | None


class AssetCard(BaseModel):
    id: str
    serial: str
    model: str
    region: str
    site_address: str
    warranty: WarrantyStatus
    contract: ContractStatus | None


class OrderOut(BaseModel):
    source: str
    external_ref: str
    placed_at: datetime
    status: str
    amount: ExactDecimal | None
    currency: str | None
    summary: str
    asset_id: str | None


class Rating(BaseModel):
    ticket_id: str
    rating: int
    at: datetime = Field(description="When the ticket was closed (or last changed, if it is not)")


class SatisfactionOut(BaseModel):
    count: int
    average: ExactDecimal | None = Field(description="Mean rating 1-5, two places; null without ratings")
    latest: list[Rating]


class Customer360(BaseModel):
    """Everything about a customer a ticket needs, across merged records and in the caller's
    regions: who they are, how to reach them, what they own and what covers it, what they bought,
    what happened before and how they liked it. Read in a fixed number of queries."""

    customer: CustomerCard
    identities: list[IdentityOut]
    tickets: list[PastTicket] = Field(description="The latest tickets, newest first")
    assets: list[AssetCard]
    more_assets: bool = Field(description="The customer has more assets than listed (GET /assets?customer_id=)")
    contracts: list[ContractStatus] = Field(description="Valid today and covering all of the customer's assets")
    orders: list[OrderOut] = Field(description="The latest orders from the business systems, newest first")
    satisfaction: SatisfactionOut
