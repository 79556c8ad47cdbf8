"""HTTP shapes of /customers (docs/customers.md), and the one place that validates a customer's
own fields: kind, name, consent channels, billing currency, language, contact identities (each
normalised by ``domain.identities.normalize``, so a bad phone is a 422 naming its field).

References to other rows — the region exists and is the caller's, the referral code names a
customer the caller sees, the member level is one of the region's price rules, an identity is
nobody else's — are checked by ``api/services/customers.py``. ``ImportRow`` is one line of the
CSV import, with the same rules under the CSV's column names.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from domain.identities import BadIdentity, normalize
from models.pricing import CURRENCIES

CustomerKind = Literal["person", "company"]
IdentityKind = Literal["phone", "email", "wechat_openid", "wechat_unionid", "app_user"]
ConsentChannel = Literal["sms", "email", "wechat", "app", "phone"]
CONSENT_CHANNELS: tuple[ConsentChannel, ...] = ("sms", "email", "wechat", "app", "phone")

# The most contact identities one request may add (a customer may gather more over time).
MAX_IDENTITIES = 20
# A referral code as given to ``referred_by``: letters and digits, any case (matched upper-cased). The
# API draws 8 characters of RFC 4648 base32; codes loaded otherwise (the demo's) use other letters.
REFERRAL_CODE_PATTERN = r"^[A-Za-z0-9]{4,32}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$"
LEVEL_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
CUSTOMER_ID_PATTERN = r"^cus_[0-9a-f]{1,28}$"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Level = Annotated[str, StringConstraints(strip_whitespace=True, pattern=LEVEL_PATTERN)]
Language = Annotated[str, StringConstraints(strip_whitespace=True, pattern=LANGUAGE_PATTERN)]
Notes = Annotated[str, StringConstraints(max_length=2000)]
ReferralCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=REFERRAL_CODE_PATTERN)]
Consent = dict[ConsentChannel, bool]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def currency(value: str | None) -> str | None:
    """An ISO 4217 code of the rounding table (``models.pricing.CURRENCIES``), upper-cased."""
    if value is None:
        return None
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise ValueError(f"not a supported currency (one of {', '.join(sorted(CURRENCIES))})")
    return code


def identity_value(kind: str, value: str) -> str:
    try:
        return normalize(kind, value)
    except BadIdentity as exc:
        raise ValueError(str(exc)) from None


class IdentityIn(_Body):
    """A way to recognise the customer; ``value`` is stored in its normal form (a phone in E.164,
    an e-mail lower-cased)."""

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=200, examples=["+86 138 0013 8000"])
    verified: bool = False

    @field_validator("value")
    @classmethod
    def _normal(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        return value if kind is None else identity_value(kind, value)


def _no_repeats(identities: list[IdentityIn]) -> list[IdentityIn]:
    seen: set[tuple[str, str]] = set()
    for i, identity in enumerate(identities):
        if (identity.kind, identity.value) in seen:
            raise ValueError(f"identities[{i}] repeats {identity.kind} {identity.value}")
        seen.add((identity.kind, identity.value))
    return identities


class CustomerCreate(_Body):
    """The body of ``POST /customers``."""

    kind: CustomerKind = "person"
    name: Name = Field(examples=["Lin Hua"])
    region: str = Field(min_length=1, max_length=32, examples=["east"])
    member_level: Level | None = Field(default=None, description="A member level of the region's price rules")
    referred_by: ReferralCode | None = Field(
        default=None, description="The referrer's referral code (a customer the caller sees)", examples=["K3QF7ZPA"]
    )
    consent: Consent = Field(default_factory=dict, description="Channel → may we message them there (absent: no)")
    billing_currency: str | None = Field(default=None, max_length=3, description="ISO 4217; null: the price list's")
    language: Language = "zh"
    notes: Notes = ""
    identities: list[IdentityIn] = Field(default_factory=list, max_length=MAX_IDENTITIES)

    @field_validator("billing_currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return currency(value)

    @field_validator("identities")
    @classmethod
    def _unique(cls, value: list[IdentityIn]) -> list[IdentityIn]:
        return _no_repeats(value)


class CustomerPatch(_Body):
    """The body of ``PATCH /customers/{id}``: the fields to change. ``consent`` changes only the
    channels it names; ``member_level`` and ``billing_currency`` are cleared with null; moving to
    another ``region`` is a supervisor's, manager's or admin's."""

    name: Name | None = None
    member_level: Level | None = None
    consent: Consent | None = None
    billing_currency: str | None = Field(default=None, max_length=3)
    language: Language | None = None
    notes: Notes | None = None
    region: str | None = Field(default=None, min_length=1, max_length=32)

    @field_validator("billing_currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return currency(value)


class MergeIn(BaseModel):
    """The body of ``POST /customers/{id}/merge``: the record merged into ``{id}``."""

    model_config = ConfigDict(extra="forbid")

    from_: str = Field(alias="from", min_length=1, max_length=32, examples=["cus_3f2a9c0d41b7e655"])


class IdentityOut(BaseModel):
    id: int
    kind: IdentityKind
    value: str
    verified: bool
    created_at: datetime


class CustomerOut(BaseModel):
    id: str
    kind: CustomerKind
    name: str
    region: str
    member_level: str | None
    referral_code: str
    referred_by: str | None = Field(description="The referrer's customer id")
    referrals: int = Field(description="Customers this one referred (across its merged records)")
    consent: dict[ConsentChannel, bool] = Field(description="Every channel: true only where consent was given")
    billing_currency: str | None
    language: str
    notes: str
    identities: list[IdentityOut]
    merged_ids: list[str] = Field(description="Records merged into this one (their history is this customer's)")
    requested_id: str = Field(description="The id asked for: another than ``id`` when that record was merged")
    merged: bool = Field(description="The requested record was merged into this one")
    created_at: datetime
    updated_at: datetime


class CustomerItem(BaseModel):
    """A customer in a list: no referral count or merge history (``GET /customers/{id}`` has them)."""

    id: str
    kind: CustomerKind
    name: str
    region: str
    member_level: str | None
    referral_code: str
    billing_currency: str | None
    language: str
    identities: list[IdentityOut]
    created_at: datetime


class CustomerPage(BaseModel):
    items: list[CustomerItem]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at the end.")


# --- orders ---

Amount = Annotated[Decimal, Field(max_digits=18, decimal_places=4, ge=0, allow_inf_nan=False)]


class OrderIn(_Body):
    """An order a business system reports; ``(source, external_ref)`` names it. Reporting it again
    replaces its status, amount and the other fields (orders change status)."""

    source: str = Field(pattern=r"^[a-z0-9_-]{1,32}$", examples=["erp"])
    external_ref: str = Field(min_length=1, max_length=200, examples=["SO-2026-001234"])
    placed_at: AwareDatetime
    status: str = Field(default="", max_length=32, examples=["paid"])
    amount: Amount | None = Field(default=None, description='A decimal string, e.g. "1299.00"')
    currency: str | None = Field(
        default=None, max_length=3, validate_default=True, description="ISO 4217; required with an amount"
    )
    summary: str = Field(default="", max_length=500)
    asset_id: str | None = Field(default=None, min_length=1, max_length=32)

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_string(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError('send the amount as a decimal string, e.g. "1299.00"')
        return value

    @field_validator("placed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 with an offset: no such instant in UTC
            raise ValueError("out of range") from None

    @field_validator("currency")
    @classmethod
    def _with_amount(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = currency(value)
        amount = info.data.get("amount")
        if amount is not None and value is None:
            raise ValueError("give the currency of the amount")
        if amount is not None and value is not None:
            places = -amount.normalize().as_tuple().exponent
            if places > CURRENCIES[value].decimals:
                raise ValueError(f"{value} amounts have at most {CURRENCIES[value].decimals} decimal places")
        return value


class OrderOut(BaseModel):
    id: int
    customer_id: str = Field(description="The record the order was reported on (a merged one included)")
    source: str
    external_ref: str
    placed_at: datetime
    status: str
    amount: str | None = Field(description="A decimal string in the currency's minor units")
    currency: str | None
    summary: str
    asset_id: str | None


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page; null at the end.")


# --- CSV import ---

IMPORT_COLUMNS = (
    "name",
    "kind",
    "region",
    "phone",
    "email",
    "wechat_openid",
    "member_level",
    "referred_by_code",
    "consent_sms",
    "consent_wechat",
    "consent_email",
    "billing_currency",
    "language",
    "external_id",
)
REQUIRED_COLUMNS = ("name", "region")
IMPORT_IDENTITIES: tuple[IdentityKind, ...] = ("phone", "email", "wechat_openid")
_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0"}


def _flag(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE or text == "":
        return False
    raise ValueError("write true or false (or yes/no, 1/0; empty: false)")


class ImportRow(BaseModel):
    """One CSV line, under the CSV's column names; empty cells are absent values."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    kind: CustomerKind = "person"
    region: str = Field(min_length=1, max_length=32)
    phone: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    wechat_openid: str | None = Field(default=None, max_length=200)
    member_level: Level | None = None
    referred_by_code: ReferralCode | None = None
    consent_sms: bool = False
    consent_wechat: bool = False
    consent_email: bool = False
    billing_currency: str | None = Field(default=None, max_length=3)
    language: Language = "zh"
    external_id: str | None = Field(default=None, max_length=200)

    @field_validator("phone", "email", "wechat_openid")
    @classmethod
    def _identity(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else identity_value(str(info.field_name), value)

    @field_validator("consent_sms", "consent_wechat", "consent_email", mode="before")
    @classmethod
    def _consent(cls, value: Any) -> bool:
        return value if isinstance(value, bool) else _flag(value)

    @field_validator("billing_currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        return currency(value)

    @classmethod
    def from_cells(cls, cells: dict[str, str]) -> "ImportRow":
        """Empty cells are left out, so they take the defaults."""
        return cls.model_validate({k: v for k, v in cells.items() if v.strip() != ""})

    def identities(self) -> list[tuple[str, str]]:
        return [(kind, value) for kind in IMPORT_IDENTITIES if (value := getattr(self, kind)) is not None]

    def consent(self) -> dict[str, bool]:
        return {"sms": self.consent_sms, "wechat": self.consent_wechat, "email": self.consent_email}


class ImportedCustomer(BaseModel):
    row: int = Field(description="The CSV row (the header is row 1)")
    id: str
    referral_code: str
    external_id: str | None


class ImportResult(BaseModel):
    import_id: str = Field(description="Names the import in the audit log (target_type customer_import)")
    imported: int = Field(description="Customers created")
    identities: int = Field(description="Contact identities created")
    customers: list[ImportedCustomer]
