"""SQLModel tables of the read model and reference data (queried by ``store/``). Never sent in a
Temporal payload."""

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone: store naive UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UTC_DATETIME = UTCDateTime()


class Region(SQLModel, table=True):
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    # Working hours, holidays and make-up days (models.calendar.BusinessCalendar as JSON);
    # None: Mon–Fri 09:00–18:00 in the region's timezone.
    calendar: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class Actor(SQLModel, table=True):
    """A person or system that calls the API. ``regions`` may hold ``"*"`` for every region."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    regions: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    active: bool = True
    groups: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # teams / departments
    manager_id: str | None = Field(default=None, max_length=64)
    # --- dispatch profile (models/people.py validates it; domain/dispatch.py scores it) ---
    team: str | None = Field(default=None, max_length=64)  # primary team / department
    skills: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON)  # skill → level 1..5
    home_lat: float | None = None
    home_lon: float | None = None
    capacity: int = 10  # max open tickets
    seniority: int = 1  # 1..5; VIP tickets need senior staff
    # Working hours (models.calendar.BusinessCalendar as JSON); None: available at any time.
    working_hours: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    # Absences: [{"start": iso, "end": iso}], half-open.
    out_of_office: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    features: dict[str, float] = Field(default_factory=dict, sa_type=sa.JSON)  # rating, first-time-fix…


class ApiKey(SQLModel, table=True):
    """One API key of a person: its public id, the SHA-256 of the secret (never the secret),
    and its life. A person may hold several (rotation without lock-out); a key works while it is
    neither revoked nor expired and its person is active."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)  # "key_<random>": safe to show, list and log
    actor_id: str = Field(foreign_key="actor.id", max_length=64, index=True)
    key_hash: str = Field(max_length=64, unique=True)  # sha256 hex of the secret
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    created_by: str = Field(max_length=64)
    expires_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)  # None: never (demo keys only)
    revoked_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)

    @staticmethod
    def hash(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @staticmethod
    def new_id() -> str:
        return f"key_{secrets.token_hex(8)}"

    @classmethod
    def for_secret(
        cls, actor_id: str, secret: str, created_by: str, expires_at: datetime | None = None, label: str = ""
    ) -> "ApiKey":
        return cls(
            id=cls.new_id(),
            actor_id=actor_id,
            key_hash=cls.hash(secret),
            label=label,
            created_at=datetime.now(UTC),
            created_by=created_by,
            expires_at=expires_at,
        )

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class AuditLog(SQLModel, table=True):
    """Who changed what, with which credential, when, before and after: one row per change to
    people, roles, keys, templates and prices, written in the transaction of the change.
    Never a secret or a key's hash. Read through ``GET /audit`` (``store/audit.py``)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_target", "target_type", "target_id", "id"),
        sa.Index("ix_audit_log_actor", "actor_id", "id"),
        sa.Index("ix_audit_log_action", "action", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTC_DATETIME)
    actor_id: str = Field(max_length=64)
    # The API key id the change was made with, "oidc" for a bearer token, or what ran it outside
    # the API (e.g. "demo-loader").
    credential: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=32)  # person.create, role.grant, api_key.issue, template.publish, …
    target_type: str = Field(max_length=32)  # person, template, price_rules
    target_id: str = Field(max_length=200)
    before: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class RosterRevision(SQLModel, table=True):
    """One row whose ``revision`` goes up in the same transaction as every write to people
    (``store.people.bump_roster_revision``): dispatch workers compare it with the revision their cached
    rosters were built at and rebuild when it moved, whichever process made the change."""

    __tablename__ = "roster_revision"

    id: int = Field(default=1, primary_key=True)
    revision: int = 0


class DispatchCursor(SQLModel, table=True):
    """Round-robin position of one dispatching node in one region: who was assigned last."""

    __tablename__ = "dispatch_cursor"

    key: str = Field(primary_key=True, max_length=200)  # "<region>:<template>:<node>"
    last_id: str = Field(max_length=64)
    # The ticket that moved the rotation last, and where it stood before: a retried activity
    # for the same ticket gets the same person instead of moving the rotation twice.
    last_ticket: str | None = Field(default=None, max_length=32)
    prev_id: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)


class Template(SQLModel, table=True):
    """One published, immutable version of a process template (a ticket type)."""

    __table_args__ = (sa.UniqueConstraint("key", "version", name="uq_template_key_version"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, index=True)
    version: int
    name: str = Field(max_length=200)
    spec: dict[str, Any] = Field(sa_type=sa.JSON)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class PurchaseRequest(SQLModel, table=True):
    """Raised by the worked-example activity purchasing.create_request (one per ticket and SKU)."""

    __tablename__ = "purchase_request"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "sku", name="uq_purchase_request_ticket_sku"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=32, index=True)
    sku: str = Field(max_length=64)
    quantity: int
    reason: str = ""
    status: str = Field(default="requested", max_length=16)
    created_at: datetime = Field(sa_type=UTC_DATETIME)


class Ticket(SQLModel, table=True):
    """One row per ticket: written at intake by the API, then kept current by the projection."""

    id: str = Field(primary_key=True, max_length=32)
    # Client-supplied de-duplication key (Idempotency-Key header or external_ref).
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    # sha256 of the creation request, to tell a true repeat from a key reused for another body.
    request_hash: str | None = Field(default=None, max_length=64)
    ticket_type: str = Field(max_length=64, index=True)
    region: str = Field(max_length=32, index=True)
    priority: str = Field(max_length=16, index=True)
    status: str = Field(max_length=16, index=True)
    assignee: str | None = Field(default=None, max_length=64, index=True)
    title: str = Field(max_length=200)
    template_version: int = 0
    # Active node ids, comma separated (",task_a,task_b,"): lists filter on them with LIKE.
    active_nodes: str = Field(default="", max_length=1000)
    channel: str = Field(max_length=32)
    external_ref: str | None = Field(default=None, max_length=200)
    customer_id: str | None = Field(default=None, max_length=32, index=True)
    asset_id: str | None = Field(default=None, max_length=32, index=True)
    # The customer's rating of how it went (1-5), once they gave one (``store.tickets.ticket_row``).
    satisfaction: int | None = None
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME, index=True)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)
    closed_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    # SLA: any target missed, and the escalation level reached (managers list and filter on them).
    sla_breached: bool = Field(default=False, index=True)
    escalation: str | None = Field(default=None, max_length=16)
    # Highest event sequence number applied; the projection never moves it backwards.
    seq: int = 0
    # Latest full TicketState as JSON (serves reads after the workflow's retention ends).
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class TicketEventRow(SQLModel, table=True):
    """Append-only history of a ticket. (ticket_id, seq) is unique: retries never duplicate."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "seq", name="uq_ticket_event_ticket_seq"),
        sa.Index("ix_ticket_event_to_status_at", "to_status", "at"),  # reports: resolutions in a period
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: str = Field(max_length=32, foreign_key="ticket.id", index=True)
    seq: int
    action: str = Field(max_length=32)
    actor_id: str = Field(max_length=64)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    at: datetime = Field(sa_type=UTC_DATETIME)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
