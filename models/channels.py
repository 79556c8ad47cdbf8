"""HTTP schemas of the inbound channels: registering one (``PUT /channels/{code}``), its secret
(shown once), and what ``POST /channels/{code}/inbound`` answers. See docs/channels.md."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.channel_tables import CHANNEL_KINDS, OUTCOMES

ChannelKind = Literal["wechat", "qr_form", "app"]
Outcome = Literal["created", "replied", "confirmed", "rejected", "photo_added"]
assert set(CHANNEL_KINDS) == set(ChannelKind.__args__) and set(OUTCOMES) == set(Outcome.__args__)  # type: ignore[attr-defined]

CODE = r"^[a-z][a-z0-9_-]{0,31}$"
MAX_GRACE_S = 7 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChannelPut(_Body):
    """A channel as an admin registers it (``PUT`` creates it, or replaces these settings)."""

    kind: ChannelKind
    adapter: str | None = Field(
        default=None, max_length=32, description="An adapter of api/channels; omitted: the one named like the kind"
    )
    name: str = Field(default="", max_length=200)
    actor_id: str = Field(
        min_length=1,
        max_length=64,
        description="The machine account it acts as (an active person whose roles are channel)",
    )
    default_region: str = Field(min_length=1, max_length=32, description="The region of the customers it creates")
    default_ticket_type: str | None = Field(
        default=None, min_length=1, max_length=64, description="Omitted: the templates' classification picks"
    )
    active: bool = True


class SecretRotation(_Body):
    grace_seconds: int = Field(
        default=86_400,
        ge=0,
        le=MAX_GRACE_S,
        description="How long the previous secret still verifies (0: not at all)",
    )


class ChannelOut(BaseModel):
    """A channel, never its secrets."""

    code: str
    name: str
    kind: ChannelKind
    adapter: str
    actor_id: str
    default_region: str
    default_ticket_type: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime
    previous_secret_until: datetime | None = Field(description="Until when the previous secret still verifies")


class ChannelIssued(ChannelOut):
    """A channel with a new secret: shown this once."""

    secret: str = Field(description="Sign inbound requests with it (docs/channels.md); it cannot be shown again")


class InboundResult(BaseModel):
    """What an inbound message did."""

    outcome: Outcome
    ticket_id: str
    delivery_id: str
    duplicate: bool = Field(default=False, description="This delivery id came before: its first outcome, nothing done")
    intent: str | None = Field(default=None, description="What the customer meant, when it was not carried out as such")
