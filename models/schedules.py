"""Follow-ups and recurring work, run as Temporal Schedules (docs/schedules.md): the template's
follow-up declaration, the payloads of the ``ScheduledTicket`` workflow and the
``schedules.follow_up`` activity, and the HTTP schemas of ``/schedules``.

Durations are ISO 8601 (``P30D``, ``PT36H``) in YAML and JSON. The table is in
``models/schedule_tables.py``.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from models.common import Priority

NAME = r"^[a-z][a-z0-9_]{0,63}$"  # models/template.py's IDENT (not imported: template.py imports this module)
MIN_EVERY = timedelta(days=1)  # a maintenance plan fires at most daily
MAX_EVERY = timedelta(days=3660)
MAX_DELAY = timedelta(days=366)  # a follow-up is due at most a year after the ticket ends
MAX_FIELDS = 50


class ScheduleKind(StrEnum):
    MAINTENANCE = "maintenance"  # recurring work on an asset under contract (POST /schedules)
    FOLLOW_UP = "follow_up"  # one ticket some time after another ended (a template's follow_ups)


class ScheduleState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


# --- the template's declaration ---


class FollowUp(BaseModel):
    """A ticket the template opens some time after one of its tickets ends, e.g. a call back
    three days after close: ``{name: call_back, after: close, delay: P3D, ticket_type: general,
    title: "Call back: how is the compressor running?"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME)  # unique in the template: with the ticket id, the schedule's id
    after: Literal["close", "resolve"] = "close"
    delay: timedelta
    ticket_type: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    priority: Priority | None = None

    @field_validator("delay")
    @classmethod
    def _bounded(cls, delay: timedelta) -> timedelta:
        if not timedelta(0) < delay <= MAX_DELAY:
            raise ValueError(f"must be more than zero and at most {MAX_DELAY.days} days")
        return delay


# --- workflow and activity payloads ---


class ScheduledTicket(BaseModel):
    """Input of the ``ScheduledTicket`` workflow a schedule starts at each firing: the ticket it opens."""

    schedule_id: str
    ticket_type: str
    region: str
    title: str
    description: str = ""
    priority: Priority | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    customer_id: str | None = None
    asset_id: str | None = None
    created_by: str = "system"  # whose ticket it is, while they are active (else the system's)
    external_ref: str | None = None
    # A fixed business key (a one-off follow-up: one ticket whatever fires); None: one ticket per
    # firing, "schedule:<id>:<scheduled time>".
    key: str | None = None


class FollowUpInput(BaseModel):
    """Input of ``schedules.follow_up``: schedule the template's follow-up of a ticket that ended at ``at``."""

    ticket_id: str
    follow_up: FollowUp
    at: datetime  # when the ticket closed (or was resolved, per ``follow_up.after``)


class FollowUpScheduled(BaseModel):
    schedule_id: str
    due_at: datetime
    new: bool  # False: scheduled before (a retry, a replay)


# --- HTTP ---


class ScheduleCreate(BaseModel):
    """A maintenance plan: a ticket of ``ticket_type`` on the asset every ``every``, from ``start_at``
    while its service contract is valid. Name the asset, the contract (by number), or both."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    asset_id: str | None = Field(default=None, min_length=1, max_length=32)
    contract: str | None = Field(default=None, min_length=1, max_length=64, description="A contract number")
    ticket_type: str = Field(min_length=1, max_length=64)
    every: timedelta = Field(description="ISO 8601 duration, at least P1D: e.g. P30D")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    priority: Priority | None = None
    fields: dict[str, Any] = Field(default_factory=dict, max_length=MAX_FIELDS)
    start_at: AwareDatetime | None = Field(default=None, description="The first firing; omitted: now + every")

    @field_validator("every")
    @classmethod
    def _every(cls, every: timedelta) -> timedelta:
        if every < MIN_EVERY:
            raise ValueError("must be at least one day (P1D)")
        if every > MAX_EVERY:
            raise ValueError(f"must be at most {MAX_EVERY.days} days")
        return every

    @model_validator(mode="after")
    def _names_what(self) -> "ScheduleCreate":
        if self.asset_id is None and self.contract is None:
            raise ValueError("name the asset_id or the contract (number) the plan is for")
        return self


class ScheduleOut(BaseModel):
    id: str
    kind: ScheduleKind
    region: str
    ticket_type: str
    title: str
    asset_id: str | None
    customer_id: str | None
    contract: str | None
    every: timedelta | None  # maintenance
    start_at: datetime | None
    end_at: datetime | None  # the contract's end: no firing after it
    due_at: datetime | None  # a follow-up's one firing
    source_ticket: str | None  # the ticket a follow-up follows
    state: ScheduleState
    created_by: str
    created_at: datetime
    updated_at: datetime


class ScheduleRun(BaseModel):
    scheduled_at: datetime
    started_at: datetime
    workflow_id: str


class ScheduleDetail(ScheduleOut):
    """The row and what Temporal says of the schedule now (``temporal`` False: it is gone there)."""

    temporal: bool
    paused: bool | None = None
    note: str | None = None
    next_runs: list[datetime] = Field(default_factory=list)
    recent_runs: list[ScheduleRun] = Field(default_factory=list)
    actions_taken: int | None = None


class SchedulePage(BaseModel):
    items: list[ScheduleOut]
    next_cursor: str | None = None
