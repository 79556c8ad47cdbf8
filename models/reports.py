"""Response shapes of the manager reports (``/reports``): the HTTP contract, as OpenAPI shows it.

Durations are seconds (floats, rounded to the millisecond); rates are shares in 0..1; a mean,
percentile or rate over nothing is ``null``. ``docs/reports.md`` explains every figure.
"""

from datetime import datetime

from pydantic import BaseModel, Field


class OpenTickets(BaseModel):
    total: int = Field(description="Tickets new, assigned or in progress now")
    by_status: dict[str, int] = Field(description="new / assigned / in_progress (every one present, 0 included)")
    by_priority: dict[str, int] = Field(description="low / normal / high / urgent (every one present, 0 included)")
    by_type: dict[str, int] = Field(description="Ticket type (template key) → open tickets; types with none left out")
    awaiting_close: int = Field(description="Tickets resolved and not yet closed (not counted as open)")


class Throughput(BaseModel):
    created: int = Field(description="Tickets created in the period (created_at)")
    resolved: int = Field(description="Tickets that moved into resolved in the period (ticket events), once each")
    closed: int = Field(description="Tickets closed in the period (status closed, closed_at)")
    cancelled: int = Field(description="Tickets cancelled in the period (status cancelled, closed_at)")


class SlaSummary(BaseModel):
    open_breached: int = Field(description="Open tickets that have missed an SLA target")
    created_breached: int = Field(description="Tickets created in the period that have missed an SLA target (so far)")
    breach_rate: float | None = Field(description="created_breached / created; null when nothing was created")
    open_by_escalation: dict[str, int] = Field(
        description='Open tickets by the escalation level reached: "none", "supervisor" (the breach), "manager", '
        '"director" (every one present, 0 included)'
    )


class ResolutionTime(BaseModel):
    count: int = Field(description="Tickets resolved in the period")
    mean_seconds: float | None
    p50_seconds: float | None = Field(description="Median; linear interpolation between the nearest ranks")
    p90_seconds: float | None = Field(description="90th percentile; linear interpolation between the nearest ranks")


class StatusTime(BaseModel):
    tickets: int = Field(description="Tickets of the population that have left this status at least once")
    mean_seconds: float | None = Field(description="Mean wall-clock time those tickets spent in it")


class Figures(BaseModel):
    open: OpenTickets
    period: Throughput
    sla: SlaSummary
    resolution_time: ResolutionTime = Field(description="From creation to the last move into resolved in the period")
    time_in_status: dict[str, StatusTime] = Field(
        description="Tickets resolved or closed in the period: time spent per status (snapshot's time_in_status)"
    )


class _Region(BaseModel):
    region: str = Field(description="Region code")
    name: str


class RegionFigures(Figures, _Region):
    """One region's figures (its code and name first)."""


class Overview(BaseModel):
    since: datetime = Field(description="Start of the period (inclusive)")
    until: datetime = Field(description="End of the period (exclusive)")
    regions: list[RegionFigures] = Field(description="Every region of the report, by code")
    total: Figures = Field(description="The report's regions together")


class PersonWorkload(BaseModel):
    id: str
    name: str
    team: str | None
    roles: list[str]
    regions: list[str]
    capacity: int
    load: int = Field(
        description="Open tickets assigned to the person now, in every region (as /people shows and dispatch weighs)"
    )
    load_in_regions: int = Field(description="The part of load in the report's regions")
    utilisation: float | None = Field(description="load / capacity; null when capacity is 0")
    breached: int = Field(
        description="Open tickets the person holds in the report's regions that have missed an SLA target"
    )


class TeamWorkload(BaseModel):
    team: str | None = Field(description="Primary team; null: people without one")
    members: int
    load: int
    capacity: int
    utilisation: float | None = Field(description="load / capacity of the members together; null when capacity is 0")
    breached: int


class Workload(BaseModel):
    regions: list[str] = Field(description="The report's regions")
    people: list[PersonWorkload] = Field(
        description="Active people who work in one of the regions (or in every region), by utilisation, "
        "highest first; then load, highest first; then id"
    )
    teams: list[TeamWorkload] = Field(description="The same people per primary team, by utilisation, highest first")


class CsatFigures(BaseModel):
    answered: int = Field(description="Surveys answered in the period (answered_at)")
    average: float | None = Field(description="Mean rating (1-5), rounded to 2 decimals; null without answers")
    csat: float | None = Field(description="Share of ratings 4 or 5 (CSAT); null without answers")
    dissatisfied: float | None = Field(description="Share of ratings 2 or less; null without answers")


class CsatGroup(CsatFigures):
    key: str | None = Field(
        description="The region code, team, engineer id or ticket type; null: surveys without one (no engineer or team)"
    )
    name: str | None = Field(description="The region's or the engineer's name, where there is one")


class CsatReport(BaseModel):
    since: datetime = Field(description="Start of the period (inclusive)")
    until: datetime = Field(description="End of the period (exclusive)")
    group_by: str = Field(description="region | team | engineer | ticket_type")
    regions: list[str] = Field(description="The report's regions")
    groups: list[CsatGroup] = Field(description="One per value of group_by with answers in the period, by key")
    total: CsatFigures = Field(description="The report's regions together")
