"""HTTP shapes of the tracking-link endpoints (``/tickets/{id}/tracking-links``). The token is
in ``TrackingLinkIssued`` only: the reply that issues it; lists never show one."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MAX_TTL_DAYS = 366


class TrackingLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TTL_DAYS,
        description="Days the link works; default TICKETFLOW_TRACKING_TTL_DAYS (30).",
    )


class TrackingLinkOut(BaseModel):
    id: str = Field(examples=["trk_3f9a1c0e5b7d2a48"])
    ticket_id: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    revoked_at: datetime | None = None
    active: bool = Field(description="Neither revoked nor expired")


class TrackingLinkIssued(TrackingLinkOut):
    url: str = Field(description="The customer's page, /t/<token>: shown in this reply only, never again")


class TrackingLinkList(BaseModel):
    items: list[TrackingLinkOut]
