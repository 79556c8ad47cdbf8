"""Notification data shapes, in three separate sections:

1. SQLModel tables (outbox, inbox, contact) — database only, never in a Temporal payload;
2. the ``notify.send`` activity payloads (plain Pydantic);
3. the HTTP schemas of ``/me/notifications`` and ``/me/contact``.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.tables import UTC_DATETIME


class Channel(StrEnum):
    INBOX = "inbox"  # in-app inbox row
    EMAIL = "email"  # SMTP
    SMS = "sms"  # HTTP webhook provider, channel "sms"
    IM = "im"  # HTTP webhook provider, channel "im" (WeCom-style)


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class NotifyEvent(StrEnum):
    """Events with routing rules of their own; any other event name gets the urgency's channels."""

    ASSIGNED = "assigned"
    APPROVAL_NEEDED = "approval_needed"
    REMINDER = "reminder"
    BREACH = "breach"
    ESCALATION = "escalation"
    RESOLVED = "resolved"
    LOW_STOCK = "low_stock"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # not delivered yet (new, or failed and waiting for the activity's retry)
    SENT = "sent"  # the channel accepted it
    FAILED = "failed"  # given up: a permanent error, or too many attempts


# ---------------------------------------------------------------------------------------
# 1. Tables
# ---------------------------------------------------------------------------------------


class NotificationOutbox(SQLModel, table=True):
    """One row per (notification, channel, recipient). ``dedup_key`` is unique: rows are
    inserted ``ON CONFLICT DO NOTHING`` and only rows not yet ``sent`` are (re-)sent."""

    __tablename__ = "notification_outbox"

    id: int | None = SQLField(default=None, primary_key=True)
    # "<business key>|<channel>|<recipient>", e.g. "T123:approve_l2:approval_needed|email|li@corp.cn"
    dedup_key: str = SQLField(max_length=512, unique=True)
    # sha256(dedup_key)[:32]: the email Message-ID and the webhook Idempotency-Key.
    delivery_id: str = SQLField(max_length=64)
    base_key: str = SQLField(max_length=200, index=True)
    ticket_id: str = SQLField(max_length=64, index=True)
    event: str = SQLField(max_length=40)
    channel: str = SQLField(max_length=16)
    recipient: str = SQLField(max_length=254)  # address, phone, IM user or actor id
    actor_id: str | None = SQLField(default=None, max_length=64)
    subject: str = SQLField(max_length=300)
    body: str = SQLField(sa_type=sa.Text)
    data: dict[str, Any] = SQLField(default_factory=dict, sa_type=sa.JSON)  # ticket, urgency, amount…
    status: str = SQLField(default=DeliveryStatus.PENDING.value, max_length=16, index=True)
    attempts: int = 0
    last_error: str | None = SQLField(default=None, sa_type=sa.Text)
    # A sender holds the row until then; a second sender leaves it alone (no double send).
    claimed_until: datetime | None = SQLField(default=None, sa_type=UTC_DATETIME)
    created_at: datetime = SQLField(sa_type=UTC_DATETIME)
    updated_at: datetime = SQLField(sa_type=UTC_DATETIME)
    sent_at: datetime | None = SQLField(default=None, sa_type=UTC_DATETIME)


class NotificationInbox(SQLModel, table=True):
    """The in-app inbox: one row per actor and notification (unique ``dedup_key``)."""

    __tablename__ = "notification_inbox"
    __table_args__ = (sa.Index("ix_notification_inbox_actor_created", "actor_id", "created_at"),)

    id: int | None = SQLField(default=None, primary_key=True)
    dedup_key: str = SQLField(max_length=512, unique=True)
    actor_id: str = SQLField(max_length=64)
    ticket_id: str = SQLField(max_length=64, index=True)
    region: str = SQLField(max_length=32)
    event: str = SQLField(max_length=40)
    title: str = SQLField(max_length=300)
    body: str = SQLField(sa_type=sa.Text)
    link: str | None = SQLField(default=None, max_length=500)
    created_at: datetime = SQLField(sa_type=UTC_DATETIME)
    read_at: datetime | None = SQLField(default=None, sa_type=UTC_DATETIME)


class NotificationContact(SQLModel, table=True):
    """Where an actor is reached by email, SMS and IM (set with ``PUT /me/contact``)."""

    __tablename__ = "notification_contact"

    actor_id: str = SQLField(primary_key=True, max_length=64)
    email: str | None = SQLField(default=None, max_length=254)
    phone: str | None = SQLField(default=None, max_length=32)
    im_user: str | None = SQLField(default=None, max_length=128)
    updated_at: datetime = SQLField(sa_type=UTC_DATETIME)


# ---------------------------------------------------------------------------------------
# 2. Activity payloads (notify.send)
# ---------------------------------------------------------------------------------------

EMAIL_PATTERN = r"^[^@\s<>]+@[^@\s<>]+$"
PHONE_PATTERN = r"^\+?[0-9][0-9 \-]{5,30}$"


class TicketBrief(BaseModel):
    """What a notification says about its ticket."""

    id: str = Field(min_length=1, max_length=64)
    title: str = Field(max_length=200)
    region: str = Field(max_length=32)
    priority: str = Field(default="normal", max_length=16)
    status: str = Field(default="", max_length=16)
    link: str | None = Field(default=None, max_length=500)


class NotifyInput(BaseModel):
    """Input of ``notify.send``.

    ``recipients`` entries: an actor id (``eng-li`` or ``actor:eng-li``), ``role:<role>`` or
    ``group:<group>`` (active actors of the ticket's region), an email address
    (``li@corp.cn`` or ``mailto:…``) or a phone number (``+8613800000000`` or ``tel:…``).
    """

    # Business key of this notification: ticket id + node id + purpose. Never an attempt
    # number or run id — the same key on a retry is what makes the send happen once.
    dedup_key: str = Field(min_length=3, max_length=200, examples=["T123:approve_l2:approval_needed"])
    event: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=[e.value for e in NotifyEvent])
    urgency: Urgency = Urgency.NORMAL
    ticket: TicketBrief
    recipients: list[str] = Field(default_factory=list, max_length=200)
    amount: Decimal | None = Field(default=None, description="Decimal as a string; never a float")
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    text: str | None = Field(default=None, max_length=4000)

    @field_validator("dedup_key")
    @classmethod
    def _no_separator(cls, v: str) -> str:
        if "|" in v:
            raise ValueError("dedup_key may not contain '|'")
        return v

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, v: Any) -> Any:
        if isinstance(v, float):
            raise ValueError("send amounts as decimal strings, never floats")
        return v


class DeliveryOutcome(BaseModel):
    channel: Channel
    recipient: str
    actor_id: str | None = None
    # sent: delivered by this attempt; already_sent: by an earlier one; failed: given up;
    # pending: failed now, retried with the activity; skipped: no address / channel off.
    status: Literal["sent", "already_sent", "failed", "pending", "skipped"]
    attempts: int = 0
    error: str | None = None


class NotifyResult(BaseModel):
    """Output of ``notify.send`` (it raises instead while any delivery is still retryable)."""

    dedup_key: str
    channels: list[Channel]  # what the routing rules chose for the actors
    deliveries: list[DeliveryOutcome]
    sent: int = 0
    already_sent: int = 0
    failed: int = 0
    skipped: int = 0


# ---------------------------------------------------------------------------------------
# 3. HTTP schemas (/me/…)
# ---------------------------------------------------------------------------------------


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: str
    event: str
    title: str
    body: str
    link: str | None = None
    created_at: datetime
    read_at: datetime | None = None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = None
    unread_count: int = Field(description="Unread items matching the ticket filter (all pages)")


class ReadAllResult(BaseModel):
    marked: int


class ContactIn(BaseModel):
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    phone: str | None = Field(default=None, max_length=32, pattern=PHONE_PATTERN)
    im_user: str | None = Field(default=None, max_length=128)


class ContactOut(ContactIn):
    actor_id: str
