"""Dispatch payloads: who can take a ticket, what the node asks for, and what was decided why.

The scoring itself is ``domain/dispatch.py``. Every decision is a plain Pydantic model so
the activity can return it to the workflow and the workflow can record it in the ticket's
events (the ranked candidates and their per-criterion contributions are the "why").
"""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Built-in objectives; any other key of ``DispatchRequest.weights`` names a candidate feature.
DISTANCE, LOAD, SKILL, SENIORITY, TIER = "distance", "load", "skill", "seniority", "tier"
BUILTIN_CRITERIA = (DISTANCE, LOAD, SKILL, SENIORITY, TIER)

# Hard constraints, in the order they are reported in ``DispatchDecision.rejections``.
REJECTION_REASONS = (
    "region",
    "team",
    "role",
    "skills",
    "tier",
    "availability",
    "capacity",
    "excluded",
    "distance",
)

MAX_LEVEL = 5  # skills and seniority are levels 1..5


class Strategy(StrEnum):
    BEST_SCORE = "best_score"
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    GRAB_POOL = "grab_pool"


class GeoPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Period(BaseModel):
    """A half-open period ``[start, end)``, e.g. an out-of-office absence."""

    model_config = ConfigDict(frozen=True)

    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> "Period":
        if self.end <= self.start:
            raise ValueError("a period must end after it starts")
        return self


class Candidate(BaseModel):
    """One engineer or agent as the roster knows them at decision time."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str = ""
    region: str
    team: str = ""
    roles: list[str] = Field(default_factory=list)
    skills: dict[str, int] = Field(default_factory=dict, description="skill name → level 1..5")
    home: GeoPoint | None = None
    capacity: int = Field(ge=0, description="max open tickets")
    load: int = Field(default=0, ge=0, description="open tickets now")
    available: bool = Field(default=True, description="the roster's own verdict (on shift, not blocked)")
    out_of_office: list[Period] = Field(default_factory=list)
    calendar: str | None = Field(
        default=None, description="key of the working-hours calendar passed to CandidatePool.build"
    )
    seniority: int = Field(default=1, ge=1, le=MAX_LEVEL)
    features: dict[str, float] = Field(
        default_factory=dict, description="extra numeric criteria (rating, first-time-fix rate, …)"
    )

    @model_validator(mode="after")
    def _levels(self) -> "Candidate":
        bad = {k: v for k, v in self.skills.items() if not 1 <= v <= MAX_LEVEL}
        if bad:
            raise ValueError(f"skill levels must be 1..{MAX_LEVEL}: {bad}")
        return self


class TierRule(BaseModel):
    """Who may (``require``) or should (``prefer``) serve a customer tier.

    A candidate meets the rule with ``seniority >= min_seniority`` or any of ``roles``.
    ``require`` is a hard constraint; ``prefer`` adds the criterion ``tier`` (1 when met,
    0 otherwise) with ``weight`` unless the request's weights name ``tier`` themselves.
    """

    model_config = ConfigDict(frozen=True)

    tier: str
    min_seniority: int | None = Field(default=None, ge=1, le=MAX_LEVEL)
    roles: list[str] = Field(default_factory=list)
    mode: Literal["require", "prefer"] = "require"
    weight: float = 1.0

    @model_validator(mode="after")
    def _needs_a_criterion(self) -> "TierRule":
        if self.min_seniority is None and not self.roles:
            raise ValueError("a tier rule needs min_seniority or roles")
        return self


DEFAULT_TIER_RULES = (TierRule(tier="vip", min_seniority=4, roles=["supervisor"], mode="require"),)

DEFAULT_WEIGHTS = {DISTANCE: 0.4, LOAD: 0.25, SKILL: 0.2, SENIORITY: 0.15}


class DispatchRequest(BaseModel):
    """What a node asks for. Hard constraints filter, weights rank what is left."""

    ticket_id: str = ""
    region: str
    required_skills: dict[str, int] = Field(default_factory=dict, description="skill → min level")
    roles: list[str] = Field(default_factory=list, description="candidate needs any of these (empty: any)")
    teams: list[str] = Field(default_factory=list, description="candidate in any of these (empty: any)")
    location: GeoPoint | None = None
    max_distance_km: float | None = Field(default=None, gt=0)
    customer_tier: str | None = None
    tier_rules: list[TierRule] = Field(default_factory=lambda: list(DEFAULT_TIER_RULES))
    strategy: Strategy = Strategy.BEST_SCORE
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="distance, load, skill, seniority, tier, or a feature name → weight; negative = lower is better",
    )
    distance_scale_km: float = Field(
        default=10.0, gt=0, description="distance score = 1 / (1 + km / scale): 1 at the door, ½ at scale"
    )
    top_n: int = Field(default=5, ge=1, le=100, description="ranked candidates explained; grab-pool size")
    excluded: list[str] = Field(default_factory=list, description="declined or already tried")
    backups: list[str] = Field(default_factory=list, description="ordered ids tried when nobody qualifies")
    round_robin_cursor: str | None = Field(default=None, description="the id assigned last time")
    at: AwareDatetime | None = Field(
        default=None, description="decision time for out-of-office and working-hours checks"
    )

    @model_validator(mode="after")
    def _levels(self) -> "DispatchRequest":
        bad = {k: v for k, v in self.required_skills.items() if not 1 <= v <= MAX_LEVEL}
        if bad:
            raise ValueError(f"required skill levels must be 1..{MAX_LEVEL}: {bad}")
        return self


class ScoredCandidate(BaseModel):
    """A ranked candidate: total score and what each criterion contributed to it."""

    id: str
    name: str = ""
    rank: int
    score: float
    contributions: dict[str, float] = Field(description="criterion → normalised weight × normalised value")
    distance_km: float | None = None
    load: int
    capacity: int
    seniority: int
    skill_levels: dict[str, int] = Field(default_factory=dict, description="levels of the required skills")


class DispatchOutcome(StrEnum):
    ASSIGNED = "assigned"  # chosen_id is the assignee
    OFFERED = "offered"  # grab pool: offers go out; fallback_id if nobody claims in time
    BACKUP = "backup"  # nobody qualified; chosen_id is the first available backup
    NONE = "none"  # nobody qualified and no backup available: see rejections


class DispatchDecision(BaseModel):
    ticket_id: str = ""
    strategy: Strategy
    outcome: DispatchOutcome
    chosen_id: str | None = None
    chosen: ScoredCandidate | None = None
    offers: list[str] = Field(default_factory=list, description="grab pool: ids offered, best first")
    fallback_id: str | None = Field(default=None, description="grab pool: best score if nobody claims")
    ranked: list[ScoredCandidate] = Field(default_factory=list, description="top N in the strategy's order")
    considered: int = 0
    qualified: int = 0
    rejections: dict[str, int] = Field(
        default_factory=dict, description="hard constraint → candidates failing it (one may fail several)"
    )
    round_robin_cursor: str | None = Field(default=None, description="pass back on the next round-robin call")
    decided_at: datetime | None = None
    explanation: str


class DispatchCall(BaseModel):
    """Input of the ``dispatch.decide`` activity."""

    request: DispatchRequest
    # A fixed assignee and their backups (in order): the first available is chosen, no scoring.
    named: list[str] = Field(default_factory=list)
    # Round robin: where the rotation of this node in this region is kept ("<region>:<template>:<node>").
    cursor_key: str | None = None
