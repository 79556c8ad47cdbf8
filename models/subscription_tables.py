"""SQLModel tables of outbound webhooks (docs/integrations.md, "Subscriptions and webhooks"):
``subscription`` (who wants which ticket events, where, signed with which secret) and its
outbox ``webhook_delivery`` (one row per subscription and ticket event, written by the
projection in the transaction that records the event). Queried by ``store/subscriptions.py``;
never sent in a Temporal payload (HTTP shapes are in ``models/subscriptions.py``).
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

STATES = ("active", "paused")
STATUSES = ("pending", "failed", "delivered", "dead")  # failed: the last attempt failed, another is due


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Subscription(SQLModel, table=True):
    """One subscriber: its owner (an admin or an integration's machine account, whose regions
    and roles scope what it receives), the target URL, the events and filters it wants, and the
    secret deliveries are signed with (kept to sign; shown to the owner once). ``body_template``
    per event: a status-sync subscription of an integration source renders its own bodies."""

    __tablename__ = "subscription"
    __table_args__ = (sa.CheckConstraint(_in("state", STATES), name="ck_subscription_state"),)

    id: str = Field(primary_key=True, max_length=40)
    owner_id: str = Field(max_length=64, foreign_key="actor.id", index=True)
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    regions: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # empty: every region of the owner
    ticket_types: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # empty: every type
    sources: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # ticket channels; empty: any
    secret: str = Field(max_length=200)
    state: str = Field(default="active", max_length=16)
    failure_streak: int = 0  # consecutive failed attempts; reset by a success or a resume
    source: str | None = Field(default=None, max_length=64, index=True)  # an integration's status sync
    body_templates: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)  # event → Jinja2 body
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    paused_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)


class WebhookDelivery(SQLModel, table=True):
    """One event to one subscriber. ``(subscription_id, ticket_id, seq, event)`` is unique: the
    projection inserts ``ON CONFLICT DO NOTHING``, so a repeated write adds nothing. ``event_id``
    (sha256 of that key) goes out with every attempt: the subscriber de-duplicates by it. The
    body is built once, at insertion, so every attempt sends the same bytes' meaning."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "ticket_id", "seq", "event", name="uq_webhook_delivery_key"),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_webhook_delivery_status"),
        sa.Index("ix_webhook_delivery_due", "subscription_id", "status", "next_attempt_at"),
        sa.Index("ix_webhook_delivery_line", "subscription_id", "ticket_id", "seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=40, foreign_key="subscription.id")
    event_id: str = Field(max_length=64)
    ticket_id: str = Field(max_length=32)
    seq: int
    event: str = Field(max_length=32)
    body: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTC_DATETIME)
    claimed_until: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    response_code: int | None = None
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    delivered_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
