"""business-system events: sources, their mapping rules, de-duplicated occurrences, events

Revision ID: 0014_integrations
Revises: 0013_channels
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0014_integrations"
down_revision: str | None = "0013_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integration_source",
        sa.Column("code", sa.String(length=32), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=64), sa.ForeignKey("actor.id"), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("previous_secret", sa.String(length=128), nullable=True),
        sa.Column("previous_valid_until", UTCDateTime(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("rotated_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "integration_mapping",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(length=32), sa.ForeignKey("integration_source.code"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("source", "version", name="uq_integration_mapping_source_version"),
    )
    op.create_table(
        "integration_occurrence",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("key_values", sa.JSON(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.Column("last_event_id", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("source", "dedup_key", name="uq_integration_occurrence_source_key"),
    )
    op.create_index("ix_integration_occurrence_ticket_id", "integration_occurrence", ["ticket_id"])
    op.create_table(
        "integration_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=True),
        sa.Column("mapping_version", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.String(length=32), nullable=True),
        sa.Column("ticket_key", sa.String(length=200), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.UniqueConstraint("source", "event_id", name="uq_integration_event_source_event"),
        sa.CheckConstraint(
            "outcome IN ('created', 'added', 'reopened', 'ignored', 'rejected')", name="ck_integration_event_outcome"
        ),
    )
    op.create_index("ix_integration_event_ticket", "integration_event", ["ticket_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_integration_event_ticket", "integration_event")
    op.drop_table("integration_event")
    op.drop_index("ix_integration_occurrence_ticket_id", "integration_occurrence")
    op.drop_table("integration_occurrence")
    op.drop_table("integration_mapping")
    op.drop_table("integration_source")
