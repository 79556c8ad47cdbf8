"""SQLModel tables of notifications — outbox, inbox, contact (queried by
``store/notifications.py``). Never sent in a Temporal payload (the payloads are in
``models/notifications.py``).
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.tables import UTC_DATETIME


class DeliveryStatus(StrEnum):
    """``notification_outbox.status``."""

    PENDING = "pending"  # not delivered yet (new, or failed and waiting for ``next_attempt_at``)
    SENT = "sent"  # the channel accepted it
    FAILED = "failed"  # given up: a permanent error, or too many attempts


class NotificationOutbox(SQLModel, table=True):
    """One row per (notification, channel, recipient). ``dedup_key`` is unique: rows are
    inserted ``ON CONFLICT DO NOTHING`` and only rows not yet ``sent`` are (re-)sent.

    ``notify.send`` writes the rows and delivers the inbox rows itself; the delivery loop
    (``activities/notify.py`` ``run``) sends the others, one lane per channel: it claims a due
    row with a lease, sends it and marks it ``sent`` — or backs off (``next_attempt_at``) and
    finally gives up (``failed``)."""

    __tablename__ = "notification_outbox"
    # the delivery loop: a channel's due rows
    __table_args__ = (sa.Index("ix_notification_outbox_due", "channel", "status", "next_attempt_at"),)

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
    # Not sent before then (the backoff after a failed attempt; inbox rows: the loop's fallback).
    next_attempt_at: datetime = SQLField(sa_type=UTC_DATETIME)
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
