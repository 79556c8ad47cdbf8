"""Notification data shapes: the channels, urgencies and events, the ``notify.send``
activity payloads (plain Pydantic) and the delivery loop's settings (``NotifySettings``). The
tables (outbox, inbox, contact) are in ``models/notifications_tables.py``, the HTTP schemas of
``/me/notifications`` and ``/me/contact`` in ``models/notifications_http.py``.
"""

from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# tests/workflows still import the inbox table from here:


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
    # sent: delivered by this call (the inbox); already_sent: before; queued: in the outbox, sent
    # by the delivery loop (email, SMS, IM; ``error`` is the last attempt's, if any); failed: given
    # up; skipped: no address / channel off.
    status: Literal["sent", "already_sent", "queued", "failed", "skipped"]
    attempts: int = 0
    error: str | None = None


class NotifyResult(BaseModel):
    """Output of ``notify.send``: what it did at once (the inbox) and what it queued for the
    delivery loop (external channels). It never waits for an external channel."""

    dedup_key: str
    channels: list[Channel]  # what the routing rules chose for the actors
    deliveries: list[DeliveryOutcome]
    sent: int = 0
    already_sent: int = 0
    queued: int = 0
    failed: int = 0
    skipped: int = 0


class NotifySettings(BaseSettings):
    """``TICKETFLOW_NOTIFY_*``: the delivery loop of notifications (``activities/notify.py``
    ``run``): one lane per channel, each with at most ``notify_concurrency`` sends at once."""

    model_config = SettingsConfigDict(env_prefix="TICKETFLOW_", env_file=".env", extra="ignore")

    notify_poll_s: float = Field(default=2.0, gt=0)  # rows other processes wrote; this one wakes the lanes
    notify_concurrency: int = Field(default=4, ge=1, le=64)  # sends at once, per channel
    notify_send_timeout_s: float = Field(default=30.0, gt=0)  # one send; then it counts as failed
    notify_lease_s: float = Field(default=120.0, gt=0)  # a claimed row is the sender's this long
    notify_max_attempts: int = Field(default=20, ge=1)
    notify_backoff_s: float = Field(default=5.0, gt=0)  # first retry; doubles up to the cap (with jitter)
    notify_backoff_max_s: float = Field(default=900.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> "NotifySettings":
        # A send still running when its lease ends could be claimed and sent by another worker.
        if self.notify_lease_s <= self.notify_send_timeout_s + 5:
            raise ValueError("TICKETFLOW_NOTIFY_LEASE_S must exceed TICKETFLOW_NOTIFY_SEND_TIMEOUT_S by more than 5 s")
        return self
