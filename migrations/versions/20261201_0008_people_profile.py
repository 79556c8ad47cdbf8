"""dispatch profile of people (skills, home, capacity, hours, absences), round-robin cursors,
SLA breach and escalation columns of the ticket read model

Revision ID: 0008_people_profile
Revises: 0007_region_calendar
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0008_people_profile"
down_revision: str | None = "0007_region_calendar"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

def columns() -> list[sa.Column]:
    return [
    sa.Column("team", sa.String(length=64), nullable=True),
    sa.Column("skills", sa.JSON(), nullable=False, server_default="{}"),
    sa.Column("home_lat", sa.Float(), nullable=True),
    sa.Column("home_lon", sa.Float(), nullable=True),
    sa.Column("capacity", sa.Integer(), nullable=False, server_default="10"),
    sa.Column("seniority", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("working_hours", sa.JSON(), nullable=True),
    sa.Column("out_of_office", sa.JSON(), nullable=False, server_default="[]"),
    sa.Column("features", sa.JSON(), nullable=False, server_default="{}"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("actor") as batch:
        for column in columns():
            batch.add_column(column)
    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("sla_breached", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("escalation", sa.String(length=16), nullable=True))
        batch.create_index("ix_ticket_sla_breached", ["sla_breached"])
    op.create_table(
        "dispatch_cursor",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("last_id", sa.String(length=64), nullable=False),
        sa.Column("last_ticket", sa.String(length=32), nullable=True),
        sa.Column("prev_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dispatch_cursor")
    with op.batch_alter_table("ticket") as batch:
        batch.drop_index("ix_ticket_sla_breached")
        batch.drop_column("escalation")
        batch.drop_column("sla_breached")
    with op.batch_alter_table("actor") as batch:
        for column in reversed(columns()):
            batch.drop_column(column.name)
