"""customers' tracking links: the tracking_token table (hashes only)

Revision ID: 0017_tracking
Revises: 0014_integrations
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0017_tracking"
down_revision: str | None = "0014_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_token",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("ticket_id", sa.String(length=32), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_tracking_token_ticket_id", "tracking_token", ["ticket_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tracking_token_ticket_id", "tracking_token")
    op.drop_table("tracking_token")
