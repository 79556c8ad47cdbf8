"""Business-system events: a source's mapping rules (what an author writes, YAML or JSON), the
event a source sends, and the HTTP shapes of ``/integrations``. The rules are checked beyond their
shape when saved (``domain/mapping.py``); docs/integrations.md describes them with an example.
"""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.common import Priority
from models.template import IDENT

SOURCE_CODE = r"^[a-z][a-z0-9_-]{1,31}$"
EVENT_TYPE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
EVENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$"

# A JSON path into the event ($.data.serial): parsed and checked when the mapping is saved.
JsonPath = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\$")]
# A JSON path, or a constant (a string not starting with $, a number, a boolean).
Scalar = str | bool | int | float
ValueSource = Scalar
# One form field's value: one source, or a money/location assembled from parts
# ({amount: $.data.total, currency: CNY}).
FieldSource = ValueSource | dict[str, ValueSource]
# A small text template: "Alarm {$.data.code} on {$.data.serial}", or a JSON path.
TextTemplate = Annotated[str, Field(min_length=1, max_length=500)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CustomerSource(_Spec):
    """Who the ticket is for: the customer holding this identity (or with this id)."""

    kind: Literal["id", "phone", "email", "wechat_openid", "wechat_unionid", "app_user"]
    path: JsonPath


class AssetSource(_Spec):
    """What the ticket is about: the asset with this serial (its customer, when none is mapped)."""

    serial: JsonPath


class Dedup(_Spec):
    """Events whose key values are equal are one problem: one ticket while it is open, counted.
    ``window``: how long after its last event a finished ticket's problem is still the same one
    (then ``on_repeat_after_close`` decides); later, a repeat is a new problem."""

    key: list[JsonPath] = Field(min_length=1, max_length=5)
    window: timedelta = Field(default=timedelta(days=1), ge=timedelta(minutes=1), le=timedelta(days=366))


class OrderSource(_Spec):
    """The order row (``customer_order``) the event adds or updates, keyed by (source, external_ref)."""

    external_ref: JsonPath
    amount: JsonPath | None = None  # a decimal number
    currency: ValueSource | None = None  # ISO 4217, a path or a constant
    status: ValueSource | None = None  # a path or a constant (paid, return_requested…)
    placed_at: JsonPath | None = None  # ISO 8601; absent: the event's occurred_at
    summary: TextTemplate | None = None


def _default_dedup() -> Dedup:
    return Dedup(key=["$.event_id"])


class Rule(_Spec):
    """One mapping rule: the event it takes and the ticket it makes."""

    name: str = Field(pattern=IDENT)
    event_type: str = Field(pattern=EVENT_TYPE)
    condition: str | None = Field(default=None, max_length=1_000, description="CEL over `event`")
    template: str = Field(pattern=IDENT, description="The ticket type (a template key)")
    region: ValueSource | None = Field(
        default=None, description="A path or a region code; omitted: the asset's region, else the customer's"
    )
    title: TextTemplate
    description: TextTemplate | None = None
    priority: Priority | None = None
    fields: dict[Annotated[str, Field(pattern=IDENT)], FieldSource] = Field(default_factory=dict, max_length=64)
    customer: CustomerSource | None = None
    asset: AssetSource | None = None
    external_ref: JsonPath | None = None
    # Omitted: one ticket per event (the key is the event id).
    dedup: Dedup = Field(default_factory=_default_dedup)
    on_repeat_after_close: Literal["reopen", "new_ticket"] = "new_ticket"
    order: OrderSource | None = None


StatusSyncEvent = Literal[
    "created", "assigned", "status_changed", "sla_breached", "approval_decided", "resolved", "closed"
]


class StatusSync(_Spec):
    """Progress reported back to the source (docs/integrations.md, "Status sync"): for each
    listed ticket event of the tickets this source raised, a POST to ``url`` whose body is the
    event's Jinja2 template (sandboxed) rendered over the webhook body (``ticket``, ``event``…),
    signed with the source's own secret."""

    url: str = Field(min_length=8, max_length=2_000)
    statuses: dict[StatusSyncEvent, Annotated[str, Field(min_length=1, max_length=4_000)]] = Field(min_length=1)


class MappingSpec(_Spec):
    """A source's rules, tried in order: the first whose event type and condition match wins."""

    description: str = Field(default="", max_length=2_000)
    rules: list[Rule] = Field(min_length=1, max_length=50)
    status_sync: StatusSync | None = None


class MappingVersion(BaseModel):
    source: str
    version: int
    spec: MappingSpec
    created_by: str
    created_at: datetime


# --- sources ---


class SourceUpsert(_Spec):
    """Register a source or change it. The secret is made by the server and shown once: when the
    source is registered and when ``rotate_secret`` asks for a new one (the old one keeps working
    for ``previous_valid_hours``, so the sender can switch without losing events)."""

    name: str = Field(min_length=1, max_length=200)
    channel: Literal["erp", "ecommerce", "iot"] = Field(default="erp", description="The channel its tickets carry")
    actor_id: str = Field(
        min_length=1, max_length=64, description="The machine account (role channel only) its tickets are created by"
    )
    active: bool = True
    rotate_secret: bool = False
    previous_valid_hours: int = Field(default=24, ge=0, le=720)


class SourceOut(BaseModel):
    code: str
    name: str
    channel: str
    actor_id: str
    active: bool
    created_at: datetime
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    secret: str | None = Field(
        default=None, description="Only when just registered or rotated: store it now, it is never shown again"
    )


# --- events ---


class EventIn(_Spec):
    """What a source sends (signed: docs/integrations.md)."""

    event_id: str = Field(pattern=EVENT_ID, description="Unique per source: a delivery sent again is answered once")
    type: str = Field(pattern=EVENT_TYPE, examples=["device.alarm"])
    occurred_at: datetime
    data: dict[str, Any] = Field(default_factory=dict)


Outcome = Literal["created", "added", "reopened", "ignored", "rejected"]


class EventResult(BaseModel):
    event_id: str
    outcome: Outcome = Field(
        description="created: a ticket was raised; added: counted on the open ticket of the same problem; "
        "reopened: the finished ticket was reopened; ignored: no rule matched"
    )
    rule: str | None = None
    ticket_id: str | None = None
    count: int | None = Field(default=None, description="Events of this problem on the ticket so far")
    repeat: bool = Field(default=False, description="This event id was received before: its first outcome")


class Occurrence(BaseModel):
    """A problem a source reported on a ticket: how often, first and last."""

    source: str
    rule: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    last_event_id: str
