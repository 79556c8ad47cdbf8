"""Response models: only the fields most callers need, unknown ones ignored.

Ignoring what they do not name keeps an older client working when the API adds fields; the whole
answer stays in ``raw`` for anything not modelled here.
"""

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Ticket(_Model):
    """One ticket as ``GET /tickets/{id}`` and the actions return it."""

    id: str = Field(validation_alias=AliasChoices("ticket_id", "id"))
    status: str
    region: str
    ticket_type: str
    title: str
    priority: str
    description: str = ""
    channel: str | None = None
    external_ref: str | None = None
    assignee: str | None = None
    resolution: str | None = None
    customer_id: str | None = None
    asset_id: str | None = None
    seq: int = 0
    fields: dict[str, Any] = Field(default_factory=dict)
    allowed_actions: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)


class TicketSummary(_Model):
    """One row of ``GET /tickets``."""

    id: str
    status: str
    region: str
    ticket_type: str
    title: str
    priority: str
    assignee: str | None = None
    channel: str | None = None
    external_ref: str | None = None
    sla_breached: bool = False
    customer_id: str | None = None
    asset_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class TicketPage(_Model):
    items: list[TicketSummary]
    next_cursor: str | None = None


class Created(_Model):
    """What ``create_ticket`` returns: ``created`` is False when the Idempotency-Key was seen
    before (the server answered 200 with that earlier ticket instead of 201)."""

    ticket: Ticket
    created: bool
