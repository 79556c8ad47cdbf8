"""Shapes of outbound webhooks: the subscription event names, the delivery loop's settings
(``TICKETFLOW_WEBHOOK_*``) and the HTTP bodies of ``/subscriptions`` (docs/integrations.md)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SubscriptionEvent(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    STATUS_CHANGED = "status_changed"
    SLA_BREACHED = "sla_breached"
    APPROVAL_DECIDED = "approval_decided"
    RESOLVED = "resolved"
    CLOSED = "closed"
    SURVEY_ANSWERED = "survey_answered"


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not tried yet
    FAILED = "failed"  # the last attempt failed; the next one is at next_attempt_at
    DELIVERED = "delivered"
    DEAD = "dead"  # given up (too old, or the receiver said 410 Gone)


class WebhookSettings(BaseSettings):
    """``TICKETFLOW_WEBHOOK_*``: the delivery loop of subscriptions."""

    model_config = SettingsConfigDict(env_prefix="TICKETFLOW_", env_file=".env", extra="ignore")

    webhook_poll_s: float = 2.0
    webhook_lane_concurrency: int = Field(default=4, ge=1, le=32)  # sends at once per subscription (other tickets)
    webhook_backoff_s: float = 5.0  # first retry; doubles up to the cap
    webhook_backoff_max_s: float = 1_800.0
    webhook_give_up_after_s: float = 6 * 3600.0  # a delivery older than this is dead after its next failure
    webhook_pause_after: int = Field(default=20, ge=1)  # consecutive failures before the subscription pauses
    webhook_timeout_s: float = 10.0
    webhook_lease_s: float = 60.0


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class SubscriptionFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regions: list[Name] = Field(default_factory=list, max_length=50, description="Empty: every region of the owner")
    ticket_types: list[Name] = Field(default_factory=list, max_length=50)
    sources: list[Name] = Field(
        default_factory=list, max_length=50, description="Ticket channels (an integration source's channel…)"
    )


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000, examples=["https://erp.example.com/hooks/ticketflow"])
    events: list[SubscriptionEvent] = Field(min_length=1, max_length=len(SubscriptionEvent))
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    secret: str | None = Field(
        default=None, min_length=32, max_length=200, description="Omit to have one generated (shown once)"
    )


class SubscriptionOut(BaseModel):
    id: str
    owner_id: str
    url: str
    events: list[str]
    filters: SubscriptionFilters
    state: SubscriptionState
    failure_streak: int
    source: str | None = None
    created_at: datetime
    paused_at: datetime | None = None
    secret: str | None = Field(default=None, description="Only in the answer to POST: keep it, it is not shown again")


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    ticket_id: str
    seq: int
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    response_code: int | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = None
