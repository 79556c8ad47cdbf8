"""Notification channels: one small interface, one adapter per channel.

An adapter delivers one ``OutboundMessage`` or raises ``DeliveryError``. It knows nothing
about the outbox: the dispatcher in ``activities/notify.py`` claims a row, calls
``send``, and records the outcome. Adapters should let a receiver de-duplicate by
``delivery_id`` (the same on every attempt for the same outbox row).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.db import Database
from models.notifications import Channel
from models.settings import Settings


@dataclass(frozen=True)
class OutboundMessage:
    delivery_id: str  # stable per outbox row: Message-ID / Idempotency-Key
    dedup_key: str
    channel: Channel
    recipient: str  # email address, phone, IM user, or actor id (inbox)
    actor_id: str | None
    ticket_id: str
    event: str
    subject: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)  # ticket brief, urgency, amount, currency


class DeliveryError(Exception):
    """The channel did not take the message. ``permanent``: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class NotificationChannel(Protocol):
    async def send(self, message: OutboundMessage) -> None: ...


def build_channels(settings: Settings, db: Database) -> Mapping[Channel, NotificationChannel]:
    from activities.channels.email import EmailChannel
    from activities.channels.inbox import InboxChannel
    from activities.channels.webhook import WebhookChannel

    webhook = WebhookChannel(settings)
    return {
        Channel.INBOX: InboxChannel(db),
        Channel.EMAIL: EmailChannel(settings),
        Channel.SMS: webhook,
        Channel.IM: webhook,
    }
