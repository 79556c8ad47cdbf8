"""Process templates: a ticket type as data — form fields, nodes, transitions, assignees, SLA.

A template is validated when saved (domain/template_validation.py) and published as an
immutable version; a ticket carries the whole definition of the version it started with.
"""

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.common import Priority
from models.schedules import FollowUp
from models.survey_spec import SurveySpec

IDENT = r"^[a-z][a-z0-9_]{0,63}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- form fields ---


class FieldType(StrEnum):
    TEXT = "text"
    LONG_TEXT = "long_text"
    NUMBER = "number"
    MONEY = "money"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    PHONE = "phone"
    EMAIL = "email"
    LOCATION = "location"
    FILE = "file"


class FormField(_Spec):
    name: str = Field(pattern=IDENT)
    label: str = ""
    type: FieldType
    required: bool = False
    default: Any = None
    options: list[str] | None = None  # enum / multi_enum
    min: Decimal | None = Field(default=None, ge=-(10**15), le=10**15)  # number / money: value; text: length
    max: Decimal | None = Field(default=None, ge=-(10**15), le=10**15)
    pattern: str | None = None  # text: a regular expression the whole value must match
    currency: str | None = None  # money: the only accepted currency (None: any ISO code)
    # Roles that may see / edit the field; empty means everybody.
    visible_to: list[str] = Field(default_factory=list)
    editable_by: list[str] = Field(default_factory=list)


# --- people ---


class AssigneeRule(_Spec):
    """Who works on a task: exactly one of user / role / group, then ordered backups (user ids)."""

    user: str | None = None
    role: str | None = None
    group: str | None = None
    backups: list[str] = Field(default_factory=list)


class ApproverRule(_Spec):
    """One approval level's approvers: a user, everyone with a role, or the manager of someone."""

    user: str | None = None
    role: str | None = None
    # "requester" (the ticket's creator) or a form field holding an actor id.
    manager_of: str | None = None


class DispatchSpec(_Spec):
    """How a task picks its assignee among the rule's role/group (``domain/dispatch.py`` scores).

    ``grab_pool`` offers the task to the ``top_n`` best; the first to claim wins and, if
    nobody claims within ``offer_window``, the best score gets it.
    """

    strategy: Literal["best_score", "round_robin", "least_loaded", "grab_pool"] = "best_score"
    skills: dict[str, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)  # skill → min level
    location_field: str | None = None  # a location field: the site (distance objective)
    max_distance_km: float | None = Field(default=None, gt=0)
    tier_field: str | None = None  # a field holding the customer tier ("vip" → senior staff)
    weights: dict[str, float] | None = None  # distance, load, skill, seniority, tier, or a feature
    top_n: int = Field(default=3, ge=1, le=20)
    offer_window: timedelta = timedelta(minutes=15)
    reassign_on_breach: bool = True  # SLA breach while nobody started: dispatch again


class SLA(_Spec):
    """Targets in business time of the ticket's region (used by the SLA timers)."""

    response: timedelta | None = None
    resolution: timedelta | None = None


class SlaPolicy(_Spec):
    """When the SLA clocks remind and escalate, as shares of the target (the breach is 1.0 and
    goes to the supervisors; the escalations go on to the manager, then the director)."""

    reminders: list[Annotated[float, Field(gt=0, lt=1)]] = Field(default_factory=lambda: [0.5, 0.8])
    escalations: list[Annotated[float, Field(gt=1)]] = Field(default_factory=lambda: [1.5, 2.0], max_length=2)
    # Waiting on the customer pauses a clock for at most this much business time in all (None:
    # no limit); past it the clock runs again though the question is still open.
    max_pause: timedelta | None = Field(default=None, gt=timedelta(0))
    # How often one task may ask the customer for information (None: no limit).
    max_info_requests: int | None = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _increasing(self) -> "SlaPolicy":
        for name in ("reminders", "escalations"):
            values = getattr(self, name)
            if any(b <= a for a, b in pairwise(values)):
                raise ValueError(f"{name} must be increasing")
        return self


# --- nodes ---


class _Node(_Spec):
    id: str = Field(pattern=IDENT)
    name: str = ""


class OnSite(_Spec):
    """Check-in and check-out at a task: the site is the ``site_field`` location; a check-in
    farther than ``radius_m`` is refused, or recorded as far (``outside: flag``)."""

    site_field: str
    radius_m: int = Field(default=500, ge=10, le=100_000)
    outside: Literal["refuse", "flag"] = "flag"


class TaskNode(_Node):
    type: Literal["task"] = "task"
    assignee: AssigneeRule
    # Fields this task may edit, and those that must have a value before it completes.
    form: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)
    sla: SLA | None = None
    dispatch: DispatchSpec | None = None  # pick the assignee among the role / group members
    on_site: OnSite | None = None  # check-in / check-out at the site (engineers in the field)
    next: str


class Quorum(StrEnum):
    ANY = "any"
    ALL = "all"
    N_OF_M = "n_of_m"


class ApprovalLevel(_Spec):
    name: str
    approvers: ApproverRule
    quorum: Quorum = Quorum.ANY
    n: int | None = Field(default=None, ge=1)  # for n_of_m
    # The level applies only when this expression holds (e.g. amount > 10000).
    when: str | None = None
    # Business time the level may stay undecided; then ``on_timeout``: escalate (the approvers'
    # managers join the level and are told) or decide by itself.
    timeout: timedelta | None = None
    on_timeout: Literal["escalate", "approve", "reject"] = "escalate"


class ApprovalNode(_Node):
    type: Literal["approval"] = "approval"
    levels: list[ApprovalLevel] = Field(min_length=1)
    # Form fields this approval decides on: frozen from when it opens (no action or event
    # changes them while it is pending, nor after it approved). A rejection (of any approval)
    # frees every frozen field: route the revision back through the approvals that decided them.
    # None: the fields its levels' ``when`` conditions read (e.g. ``amount``).
    decides: list[str] | None = None
    on_reject: str
    next: str


class Branch(_Spec):
    name: str
    start: str  # the branch's first node; the branch ends when it reaches the parallel node's `next`


class ParallelNode(_Node):
    type: Literal["parallel"] = "parallel"
    branches: list[Branch] = Field(min_length=2)
    join: Literal["all", "any"] = "all"
    next: str  # the join point


class Condition(_Spec):
    when: str
    to: str


class GatewayNode(_Node):
    type: Literal["gateway"] = "gateway"
    conditions: list[Condition] = Field(min_length=1)
    default: str | None = None  # required: validation reports a gateway without one


class WaitNode(_Node):
    type: Literal["wait"] = "wait"
    duration: timedelta | None = None
    signal: str | None = None  # wait until this event arrives (and at most `duration`)
    # The event may also have come before the wait opened, at most this long before.
    early_window: timedelta = Field(default=timedelta(days=7), ge=timedelta(0))
    next: str


class NotifyNode(_Node):
    type: Literal["notify"] = "notify"
    event: str
    recipients: list[str] = Field(default_factory=list)  # actor ids, "role:x", "assignee", "requester"
    urgency: Literal["low", "normal", "high", "critical"] = "normal"
    next: str


class ActionNode(_Node):
    """Call any registered activity; inputs are expressions over the ticket, outputs write fields."""

    type: Literal["action"] = "action"
    activity: str
    inputs: dict[str, str] = Field(default_factory=dict)  # activity input field → expression
    outputs: dict[str, str] = Field(default_factory=dict)  # form field → activity output field
    timeout: timedelta = timedelta(minutes=5)
    next: str


class PartLine(_Spec):
    sku: str
    quantity: int = Field(ge=1, le=10_000)


class SettleNode(_Node):
    type: Literal["settle"] = "settle"
    kind: Literal["final", "pre_settlement"] = "final"
    services: list[str] = Field(default_factory=list)  # flat or tiered service codes, quantity 1 each
    hourly_service: str | None = None  # an hourly service code, priced by the minutes worked…
    minutes_field: str | None = None  # …read from this number field
    # Quoted services: service code → the money field holding the amount agreed (e.g. REPAIR-COST:
    # repair_cost); the price list's ``quoted`` rule prices it at that amount.
    quoted: dict[str, str] = Field(default_factory=dict)
    location_field: str | None = None  # the site (travel distance); default: the asset's site
    # Pricing conditions the rules react to (urban, rush, high_altitude…): condition → an
    # expression over the ticket that says when it applies. "night" and "holiday" come from the
    # region's calendar by themselves.
    pricing_conditions: dict[str, str] = Field(default_factory=dict)
    budget: Decimal | None = Field(default=None, ge=0, decimal_places=4)
    budget_tolerance_percent: Decimal = Field(default=Decimal(0), ge=0, le=1000)
    on_over_budget: str | None = None  # e.g. an approval node; else the ticket goes on
    next: str


class ReservePartsNode(_Node):
    type: Literal["reserve_parts"] = "reserve_parts"
    # Parts come from a static list, or from one SKU field and one quantity field of the form.
    parts: list[PartLine] = Field(default_factory=list)
    sku_field: str | None = None
    quantity_field: str | None = None
    location_field: str | None = None  # the site: the nearest warehouse serves it
    allow_partial: bool = False
    on_insufficient: str | None = None  # e.g. a purchase-request branch; else the ticket goes on
    next: str


class ConsumePartsNode(_Node):
    type: Literal["consume_parts"] = "consume_parts"
    reservation: str  # the reserve_parts node whose reservation is consumed
    used_field: str | None = None  # a number field: units actually used (default: all reserved)
    next: str


class ChildSpec(_Spec):
    """One child ticket a ``spawn`` node opens: its type, title and form values (expressions
    over the parent ticket, like an action node's inputs)."""

    ticket_type: str = Field(pattern=IDENT)
    title: str = Field(min_length=1, max_length=200)  # a plain title; "{title}" is the parent's
    fields: dict[str, str] = Field(default_factory=dict)  # child form field → expression over the parent


class SpawnNode(_Node):
    """Open child tickets of other types (child workflows) and wait for all of them, or for the
    first to finish; when the parent is cancelled, ``on_cancel`` says what happens to the children
    still open: ``cancel`` them (the default) or ``leave`` them running."""

    type: Literal["spawn"] = "spawn"
    children: list[ChildSpec] = Field(min_length=1, max_length=20)
    wait: Literal["all", "any"] = "all"
    on_cancel: Literal["cancel", "leave"] = "cancel"
    next: str


class EndNode(_Node):
    type: Literal["end"] = "end"


Node = Annotated[
    TaskNode
    | ApprovalNode
    | ParallelNode
    | GatewayNode
    | WaitNode
    | NotifyNode
    | ActionNode
    | SettleNode
    | ReservePartsNode
    | ConsumePartsNode
    | SpawnNode
    | EndNode,
    Field(discriminator="type"),
]


# --- events ---


class EventSpec(_Spec):
    """An event the ticket accepts (``POST /tickets/{id}/events``): who may send it and which
    form fields it may set. Senders: ``requester`` (who created the ticket), ``channel`` (a
    channel gateway account speaking for the customer), ``assignee`` (whoever holds an active
    task), or ``role:<name>``."""

    name: str = Field(pattern=IDENT)
    description: str = ""
    senders: list[str] = Field(min_length=1)
    fields: list[str] = Field(default_factory=list)


# What intake can copy from a ticket's asset into its form (``TemplateSpec.from_asset``):
# the serial or model (text), the site as a location ({lat, lon, address}) or its address (text).
AssetAttribute = Literal["serial", "model", "site", "site_address"]

# Events every ticket accepts unless its template declares them otherwise.
BUILTIN_EVENTS = (
    EventSpec(
        name="customer_reply", description="The customer answers a request_info", senders=["requester", "channel"]
    ),
    EventSpec(
        name="customer_photo",
        description="The customer sends a photo (its address in the text), e.g. through a channel",
        senders=["requester", "channel"],
    ),
    EventSpec(
        name="customer_signature",
        description="The customer signs (the signature image's address in the text)",
        senders=["requester", "channel", "assignee"],
    ),
    EventSpec(
        name="retry_settlement",
        description="Price again after the rules were fixed",
        senders=["role:finance", "role:admin"],
    ),
)


# --- classification ---


class ClassificationRule(_Spec):
    """Pick this template (and a priority) for a ticket created without an explicit type."""

    channels: list[str] = Field(default_factory=list)  # any of; empty = every channel
    keywords: list[str] = Field(default_factory=list)  # any of, in title or description
    when: str | None = None  # an expression over the submitted form values
    priority: Priority | None = None
    rank: int = Field(default=100, ge=0, le=1_000_000)  # lower wins when several templates match


class TemplateSpec(_Spec):
    """What an author writes (YAML or JSON)."""

    key: str = Field(pattern=IDENT)
    name: str
    description: str = ""
    default_priority: Priority = Priority.NORMAL
    fields: list[FormField] = Field(default_factory=list)
    start: str
    nodes: list[Node] = Field(min_length=1)
    sla: dict[Priority, SLA] = Field(default_factory=dict)
    sla_policy: SlaPolicy = Field(default_factory=SlaPolicy)
    classification: list[ClassificationRule] = Field(default_factory=list)
    # The channels tickets of this type are raised through (empty: any), e.g. [agent] for an
    # internal process that no customer channel may start.
    channels: list[str] = Field(default_factory=list)
    # The events tickets of this type accept. None (templates written before events were
    # declared): each wait's event from the requester or a channel gateway, setting no field.
    events: list[EventSpec] | None = None
    # Tickets opened some time after one of this template's tickets ends (Temporal Schedules,
    # docs/schedules.md): a call back three days after close, say.
    follow_ups: list[FollowUp] = Field(default_factory=list)
    # The satisfaction survey sent when a ticket resolves or closes (docs/surveys.md).
    survey: SurveySpec | None = None
    # Form fields intake fills from the ticket's asset when the request leaves them empty
    # (field → what of the asset): e.g. {device_id: serial, site: site} for a QR scan.
    from_asset: dict[str, AssetAttribute] = Field(default_factory=dict)

    def node(self, node_id: str) -> Any:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def event(self, name: str) -> "EventSpec | None":
        """The declared event (built-in ones unless redeclared), or None: not accepted."""
        declared = self.events
        if declared is None:
            waits = dict.fromkeys(n.signal for n in self.nodes if n.type == "wait" and n.signal)
            declared = [EventSpec(name=w, senders=["requester", "channel"]) for w in waits]
        for e in [*declared, *BUILTIN_EVENTS]:
            if e.name == name:
                return e
        return None

    def event_names(self) -> list[str]:
        names = (
            [e.name for e in self.events or []]
            if self.events is not None
            else [n.signal for n in self.nodes if n.type == "wait" and n.signal]
        )
        return list(dict.fromkeys([*names, *(e.name for e in BUILTIN_EVENTS)]))

    def field(self, name: str) -> FormField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


class TemplateVersion(BaseModel):
    """A published, immutable version (what tickets pin)."""

    key: str
    version: int
    spec: TemplateSpec
