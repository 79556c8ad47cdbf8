"""SQLModel tables of the messages a ticket sends to its customer (docs/customer-messages.md):
the outbox ``customer_message`` (one row per ticket event, kind and channel, written by the
projection in the transaction that records the event) and the texts,
``customer_message_template``. Queried by ``store/customer_messages.py``; never sent in a
Temporal payload (the shapes that travel are in ``models/customer_messages.py``).
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

# What a customer is told about (models.customer_messages.MessageKind).
KINDS = ("accepted", "on_the_way", "info_needed", "resolved", "closed")
# Where: "none" only on a skipped row (the customer can be reached nowhere).
CHANNELS = ("sms", "email", "wechat", "webhook", "none")
STATUSES = ("pending", "sent", "failed", "skipped")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CustomerMessage(SQLModel, table=True):
    """One message to a customer on one channel. ``(ticket_id, seq, kind, channel)`` is unique:
    the projection inserts ``ON CONFLICT DO NOTHING``, so a repeated write adds nothing. The text
    is rendered once, at insertion, so every attempt sends exactly the same words.

    Delivery (``activities/customer_messages.py``) claims a due row with a lease, sends it and
    marks it ``sent`` — or backs off (``next_attempt_at``) and finally gives up (``failed``). A
    row held for quiet hours stays ``pending`` with ``held_until``; ``quiet_exempt`` lets it go
    out anyway (it is followed by a time-critical message of the same ticket)."""

    __tablename__ = "customer_message"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "seq", "kind", "channel", name="uq_customer_message_key"),
        sa.CheckConstraint(_in("kind", KINDS), name="ck_customer_message_kind"),
        sa.CheckConstraint(_in("channel", CHANNELS), name="ck_customer_message_channel"),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_customer_message_status"),
        # the delivery loop: a channel's due rows
        sa.Index("ix_customer_message_due", "channel", "status", "next_attempt_at"),
        # ordering within a ticket (an earlier row not yet delivered holds the later ones back)
        sa.Index("ix_customer_message_ticket", "ticket_id", "channel", "seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=32, foreign_key="ticket.id")
    seq: int  # the ticket event it tells about
    kind: str = Field(max_length=16)
    customer_id: str = Field(max_length=32, index=True)  # the customer it went to (after merges)
    region: str = Field(max_length=32)  # the ticket's region: its timezone and quiet hours
    channel: str = Field(max_length=16)
    recipient: str = Field(default="", max_length=254)  # phone, email, WeChat openid or app user
    language: str = Field(max_length=8)
    template_version: int | None = None  # the customer_message_template version rendered
    subject: str = Field(default="", max_length=300)
    body: str = Field(default="", sa_type=sa.Text)
    # Channel extras: the WeChat template id and its data, the tracking link…
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # sha256 of the idempotency key, 32 hex: Idempotency-Key / Message-ID on every attempt.
    delivery_id: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    reason: str | None = Field(default=None, sa_type=sa.Text)  # why skipped / held / the last error
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTC_DATETIME)
    held_until: datetime | None = Field(default=None, sa_type=UTC_DATETIME)  # quiet hours
    quiet_exempt: bool = False
    claimed_until: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)
    sent_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)


class CustomerMessageTemplate(SQLModel, table=True):
    """The words of one kind of message, for a ticket type ("*": any type without its own), a
    language and a channel ("*": any channel without its own). Saved only once it compiles in
    the sandbox and renders against a sample context (``domain/message_templates.py``); each
    save is the next ``version``."""

    __tablename__ = "customer_message_template"
    __table_args__ = (
        sa.UniqueConstraint("ticket_type", "kind", "language", "channel", name="uq_customer_message_template_key"),
        sa.CheckConstraint(_in("kind", KINDS), name="ck_customer_message_template_kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_type: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    language: str = Field(max_length=8)
    channel: str = Field(default="*", max_length=16)
    subject: str = Field(default="", max_length=500)
    body: str = Field(sa_type=sa.Text)
    version: int = 1
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)
