"""SQLModel tables of business-system events (``POST /integrations/{source}/events``): the
sources and their secrets, their mapping rules (immutable versions, like templates), the
de-duplication state of each repeated problem, and every event received. Queried by
``store/integrations.py``; never sent in a Temporal payload. See docs/integrations.md.
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

# What became of an event (``IntegrationEvent.outcome``).
OUTCOMES = ("created", "added", "reopened", "ignored", "rejected")


class IntegrationSource(SQLModel, table=True):
    """A business system that sends us events (an ERP, a shop, a fleet of devices): the secret it
    signs with (``domain/inbound_auth.py``) — the HMAC needs it in clear, so it is stored as given and
    shown once — the one before it while a rotation is under way, and the machine account (role
    ``channel``) its tickets are created by."""

    __tablename__ = "integration_source"

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    channel: str = Field(max_length=32)  # models.schemas.Channel of the tickets it raises (erp, ecommerce…)
    actor_id: str = Field(max_length=64, foreign_key="actor.id")
    secret: str = Field(max_length=128)
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_valid_until: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    active: bool = True
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)
    rotated_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)


class IntegrationMapping(SQLModel, table=True):
    """One published, immutable version of a source's mapping rules (models.integrations.MappingSpec)."""

    __tablename__ = "integration_mapping"
    __table_args__ = (sa.UniqueConstraint("source", "version", name="uq_integration_mapping_source_version"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32, foreign_key="integration_source.code")
    version: int
    spec: dict[str, Any] = Field(sa_type=sa.JSON)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class IntegrationOccurrence(SQLModel, table=True):
    """The de-duplication state of one problem: a source's rule and the values of its dedup key
    (hashed into ``dedup_key``). ``generation`` counts the tickets raised for it one after the
    other; ``ticket_id`` is the current one's (known before the ticket exists: it is derived from
    the creation's idempotency key) and ``count`` the events added to it. The row is the lock two
    first arrivals race for: only one inserts it."""

    __tablename__ = "integration_occurrence"
    __table_args__ = (sa.UniqueConstraint("source", "dedup_key", name="uq_integration_occurrence_source_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    dedup_key: str = Field(max_length=64)  # sha256 hex of [rule, values]
    rule: str = Field(max_length=64)
    key_values: list[Any] = Field(default_factory=list, sa_type=sa.JSON)  # shown, each cut to 200 characters
    generation: int = 1
    ticket_id: str = Field(max_length=32, index=True)
    count: int = 1
    first_seen: datetime = Field(sa_type=UTC_DATETIME)
    last_seen: datetime = Field(sa_type=UTC_DATETIME)
    last_event_id: str = Field(max_length=128)
    # When the current generation's ticket was last set out to be created; None: its creation
    # failed, so the next event creates it.
    claimed_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)


class IntegrationEvent(SQLModel, table=True):
    """Every event received with a good signature and what became of it. ``(source, event_id)`` is
    unique: a delivery sent again gets the first outcome (a ``rejected`` one is tried again)."""

    __tablename__ = "integration_event"
    __table_args__ = (
        sa.UniqueConstraint("source", "event_id", name="uq_integration_event_source_event"),
        sa.CheckConstraint(f"outcome IN ({', '.join(repr(o) for o in OUTCOMES)})", name="ck_integration_event_outcome"),
        sa.Index("ix_integration_event_ticket", "ticket_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    event_id: str = Field(max_length=128)
    type: str = Field(max_length=64)
    received_at: datetime = Field(sa_type=UTC_DATETIME)
    outcome: str = Field(max_length=16)  # OUTCOMES
    rule: str | None = Field(default=None, max_length=64)
    mapping_version: int | None = None
    ticket_id: str | None = Field(default=None, max_length=32)
    ticket_key: str | None = Field(default=None, max_length=200)  # the Idempotency-Key its ticket is created with
    count: int | None = None  # the occurrence's count after this event
    detail: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)  # why it was rejected
