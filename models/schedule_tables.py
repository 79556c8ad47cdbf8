"""SQLModel table of the schedules the API manages (``GET /schedules``): one row per Temporal
Schedule, maintenance plans and follow-ups alike, with the same id. Temporal holds the
schedule itself (its spec, next runs, paused flag); the row is what lists, regional scope and
the audit trail read. Queried by ``store/schedules.py``; never sent in a Temporal payload.
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

KINDS = ("maintenance", "follow_up")
STATES = ("active", "paused", "deleted")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class MaintenanceSchedule(SQLModel, table=True):
    """A Temporal Schedule opening tickets: every ``every_s`` seconds from ``start_at`` until
    ``end_at`` (maintenance), or once at ``due_at`` (a follow-up of ``source_ticket``)."""

    __tablename__ = "maintenance_schedule"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", KINDS), name="ck_maintenance_schedule_kind"),
        sa.CheckConstraint(_in("state", STATES), name="ck_maintenance_schedule_state"),
        sa.Index("ix_maintenance_schedule_region_created", "region", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=128)  # the Temporal schedule id
    kind: str = Field(max_length=16)
    region: str = Field(max_length=32, foreign_key="region.code")
    ticket_type: str = Field(max_length=64)
    title: str = Field(max_length=200)
    asset_id: str | None = Field(default=None, max_length=32, index=True)
    customer_id: str | None = Field(default=None, max_length=32)
    contract: str | None = Field(default=None, max_length=64)  # the contract number
    every_s: int | None = None  # maintenance: seconds between firings
    start_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    end_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    due_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)  # follow-up: its one firing
    source_ticket: str | None = Field(default=None, max_length=32, index=True)
    # What each firing's ticket carries (description, priority, form fields).
    ticket: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    state: str = Field(default="active", max_length=16)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    updated_at: datetime = Field(sa_type=UTC_DATETIME)
