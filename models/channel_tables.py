"""SQLModel tables of the inbound customer channels: the ``channel`` registry (who may post to
``/channels/{code}/inbound``, with which secret, acting as which machine account) and the
``channel_delivery`` record that makes each delivery id count once. Queried by
``store/channels.py``; never sent in a Temporal payload. See docs/channels.md.
"""

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

# What sort of channel it is (and so which ticket channel its tickets carry).
CHANNEL_KINDS = ("wechat", "qr_form", "app")
# What a delivery did: one of these, planned when it is received, final once ``completed_at`` is set.
OUTCOMES = ("created", "replied", "confirmed", "rejected", "photo_added")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class InboundChannel(SQLModel, table=True):
    """One customer channel: its adapter parses what it posts, its secret signs it, and it acts
    as the machine account ``actor_id`` (role ``channel``). The secret has to be kept as it is
    (an HMAC is checked with the secret itself, not a hash): it is never shown after it is
    issued, never logged and never audited. ``previous_secret`` still verifies until
    ``previous_secret_until`` (a rotation's grace period)."""

    __tablename__ = "channel"
    __table_args__ = (sa.CheckConstraint(_in("kind", CHANNEL_KINDS), name="ck_channel_kind"),)

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    kind: str = Field(max_length=16)
    adapter: str = Field(max_length=32)  # a name of api/channels' registry
    actor_id: str = Field(max_length=64, foreign_key="actor.id")
    default_region: str = Field(max_length=32, foreign_key="region.code")  # of new customers
    default_ticket_type: str | None = Field(default=None, max_length=64)  # None: classification picks
    secret: str = Field(max_length=128)
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_secret_until: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    active: bool = True
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)
    secret_rotated_at: datetime = Field(sa_type=UTC_DATETIME)

    def secrets_at(self, now: datetime) -> list[str]:
        """The secrets a request may be signed with now: the current one, and the previous one
        during its grace period."""
        previous = self.previous_secret
        if previous and self.previous_secret_until is not None and self.previous_secret_until > now:
            return [self.secret, previous]
        return [self.secret]


class ChannelDelivery(SQLModel, table=True):
    """One delivery a channel made, by its own id: the same ``(channel, delivery_id)`` again
    answers this row's outcome and does nothing. Written (``completed_at`` empty) before the
    ticket is touched, completed after: a crash in between leaves the plan, which the repeat
    carries out again under the same idempotency key."""

    __tablename__ = "channel_delivery"
    __table_args__ = (
        sa.UniqueConstraint("channel", "delivery_id", name="uq_channel_delivery_channel_delivery_id"),
        sa.CheckConstraint(_in("outcome", OUTCOMES), name="ck_channel_delivery_outcome"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32, foreign_key="channel.code")
    delivery_id: str = Field(max_length=128)
    received_at: datetime = Field(sa_type=UTC_DATETIME)
    outcome: str = Field(max_length=16)
    event: str | None = Field(default=None, max_length=64)  # the ticket event it sent, if any
    intent: str | None = Field(default=None, max_length=16)  # what the customer meant (confirm, reject…)
    ticket_id: str | None = Field(default=None, max_length=32, index=True)  # None until a new ticket exists
    customer_id: str | None = Field(default=None, max_length=32)
    completed_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
