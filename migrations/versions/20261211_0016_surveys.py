"""satisfaction surveys: one per ticket, its answer, and the follow-up a low rating opened

Revision ID: 0016_surveys
Revises: 0014_integrations
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0016_surveys"
down_revision: str | None = "0014_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.String(length=32), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("ticket_type", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=32), nullable=True),
        sa.Column("engineer", sa.String(length=64), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("delivery", sa.String(length=200), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("answered_via", sa.String(length=64), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=True),
        sa.Column("answer_update_id", sa.String(length=200), nullable=True),
        sa.Column("follow_up_ticket", sa.String(length=32), nullable=True),
        sa.CheckConstraint("status IN ('sent', 'answered', 'expired')", name="ck_survey_status"),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="ck_survey_rating"),
        sa.UniqueConstraint("ticket_id"),
    )
    op.create_index("ix_survey_region_answered", "survey", ["region", "answered_at"])


def downgrade() -> None:
    op.drop_index("ix_survey_region_answered", table_name="survey")
    op.drop_table("survey")
