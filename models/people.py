"""People and teams: the HTTP shapes of /people and /teams, and the one place that validates a
person's dispatch profile (the ``Actor`` columns in ``models/tables.py``).

The rules are those of the dispatch payloads in ``models/dispatch.py``: skill levels and
seniority 1..5, capacity ≥ 0, latitude/longitude in range, an absence ends after it starts;
plus what only a stored profile needs: home latitude and longitude together or not at all,
absences that do not overlap, working hours that are a valid ``BusinessCalendar``.
References to other rows (regions exist, the manager exists and no cycle) are checked by
``api/services/people.py``.
"""

from datetime import UTC, datetime
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from models.calendar import BusinessCalendar
from models.dispatch import MAX_LEVEL, Period

# Actor ids: letters, digits, ".", "_" and "-", as the demo's "eng-li" or "gateway-qr".
PERSON_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The skill vocabulary of the demo roster and the presets (any other name is allowed too).
SKILLS = ("equipment_repair", "installation", "hvac", "electrical", "refrigeration", "network")
TEAMS = ("field-service", "installation", "hvac")

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Level = Annotated[int, Field(ge=1, le=MAX_LEVEL)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Absence(_Body):
    """An out-of-office period, half-open ``[start, end)``; stored in UTC."""

    start: AwareDatetime = Field(examples=["2026-08-03T00:00:00+08:00"])
    end: AwareDatetime = Field(examples=["2026-08-08T00:00:00+08:00"])

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError("an absence must end after it starts")
        return value

    def period(self) -> Period:
        return Period(start=self.start, end=self.end)

    def overlaps(self, other: "Absence") -> bool:
        return self.start < other.end and other.start < self.end


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class PersonFields(_Body):
    """A whole person but the id: the body of ``PUT /people/{id}``, and what a PATCH must
    still satisfy once merged into the stored person. API keys are not part of it."""

    name: str = Field(min_length=1, max_length=200)
    roles: list[Code] = Field(min_length=1, examples=[["engineer"]])
    regions: list[Code] = Field(
        min_length=1, description='Region codes, or ["*"] for every region', examples=[["east"]]
    )
    groups: list[Code] = Field(default_factory=list, description="Teams / departments besides the primary team")
    team: Code | None = Field(default=None, description="Primary team", examples=["field-service"])
    manager_id: str | None = Field(default=None, max_length=64, description="An existing person; no cycles")
    active: bool = True
    skills: dict[Code, Level] = Field(
        default_factory=dict, description="skill → level 1..5", examples=[{"equipment_repair": 4, "hvac": 2}]
    )
    home_lat: Latitude | None = None
    home_lon: Longitude | None = Field(default=None, validate_default=True, description="With home_lat, or neither")
    capacity: int = Field(default=10, ge=0, le=10_000, description="Max open tickets")
    seniority: Level = Field(default=1, description="1..5; VIP tickets need 4 or more (or a supervisor)")
    working_hours: BusinessCalendar | None = Field(
        default=None, description="When this person works; null: available at any time"
    )
    out_of_office: list[Absence] = Field(default_factory=list, description="Absences, sorted, not overlapping")
    features: dict[Code, Finite] = Field(
        default_factory=dict, description="Numeric criteria: rating, …", examples=[{"rating": 4.6}]
    )

    @field_validator("roles", "regions", "groups")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("home_lon")
    @classmethod
    def _home_together(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "home_lat" not in info.data:  # home_lat itself was invalid: reported there
            return value
        if (value is None) != (info.data["home_lat"] is None):
            raise ValueError("give home_lat and home_lon together, or neither")
        return value

    @field_validator("out_of_office")
    @classmethod
    def _no_overlap(cls, value: list[Absence]) -> list[Absence]:
        ordered = sorted(value, key=lambda a: (a.start, a.end))
        for a, b in pairwise(ordered):
            if a.overlaps(b):
                raise ValueError(
                    f"absences {a.start.isoformat()}–{a.end.isoformat()} and "
                    f"{b.start.isoformat()}–{b.end.isoformat()} overlap"
                )
        return ordered

    def columns(self) -> dict[str, Any]:
        """The ``Actor`` column values (JSON columns as plain JSON)."""
        return self.model_dump(mode="json")


class _PersonId(_Body):
    id: str = Field(pattern=PERSON_ID_PATTERN, examples=["eng-e01"])


class PersonCreate(PersonFields, _PersonId):
    """The body of ``POST /people``: a new id and the whole person."""


class PersonPatch(_Body):
    """The body of ``PATCH /people/{id}``: the fields to replace (top level: a new ``skills``
    replaces the old map). The merged person must still be valid."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    roles: list[Code] | None = Field(default=None, min_length=1)
    regions: list[Code] | None = Field(default=None, min_length=1)
    groups: list[Code] | None = None
    team: Code | None = None
    manager_id: str | None = Field(default=None, max_length=64)
    active: bool | None = None
    skills: dict[Code, Level] | None = None
    home_lat: Latitude | None = None
    home_lon: Longitude | None = None
    capacity: int | None = Field(default=None, ge=0, le=10_000)
    seniority: Level | None = None
    working_hours: BusinessCalendar | None = None
    out_of_office: list[Absence] | None = None
    features: dict[Code, Finite] | None = None


# --- responses ---


class AbsenceOut(BaseModel):
    start: datetime
    end: datetime


class Released(BaseModel):
    """A deactivated person's open work being taken back (``DELETE /people/{id}``, 202)."""

    person_id: str
    tickets: list[str] = Field(description="open tickets where they held a task or sat on an approval")
    workflow_id: str = Field(description="the PersonLeft workflow signalling them (Temporal UI)")


class ApiKeyCreate(_Body):
    """The body of ``POST /people/{id}/api-keys`` (all optional)."""

    label: str = Field(default="", max_length=200, description="What the key is for", examples=["laptop"])
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Lifetime; omitted: TICKETFLOW_API_KEY_DEFAULT_TTL_DAYS; at most TICKETFLOW_API_KEY_MAX_TTL_DAYS",
    )


class ApiKeyOut(BaseModel):
    """One of a person's API keys: never the secret, never its hash."""

    id: str = Field(description='public id, "key_…": name it to revoke the key')
    person_id: str
    label: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = Field(description="null: never (demo keys only)")
    revoked_at: datetime | None
    current: bool = Field(default=False, description="the key this request was made with")


class ApiKeyIssued(ApiKeyOut):
    """A new API key: the secret is shown this once and stored only as its SHA-256 hash."""

    api_key: str = Field(description="send as X-API-Key; it cannot be shown again")


class PersonOut(BaseModel):
    id: str
    name: str
    roles: list[str]
    regions: list[str]
    groups: list[str]
    team: str | None
    manager_id: str | None
    active: bool
    skills: dict[str, int]
    home_lat: float | None
    home_lon: float | None
    capacity: int
    seniority: int
    working_hours: dict[str, Any] | None = Field(description="A BusinessCalendar; null: available at any time")
    out_of_office: list[AbsenceOut]
    features: dict[str, float]
    has_api_key: bool | None = Field(
        default=None, description="a working API key exists (shown to the person, admin and hr; else null)"
    )
    load: int = Field(description="Open tickets (new, assigned, in progress) assigned to this person now")
    redacted: list[str] = Field(
        default_factory=list,
        description="personal fields hidden from this caller (shown null or empty): home, absences, keys",
    )


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class TeamManager(BaseModel):
    id: str
    members: int = Field(description="How many of the team's members report to this person")


class TeamOut(BaseModel):
    name: str
    kind: Literal["team", "group"] = Field(description="team: a person's primary team; group: one of their groups")
    members: int = Field(description="Active members the caller can see")
    regions: dict[str, int] = Field(description='Active members per region ("*": every region)')
    managers: list[TeamManager] = Field(
        description="Whom the members report to (people outside the team), most members first"
    )
