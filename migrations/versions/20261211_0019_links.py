"""links between tickets: duplicate of, related to, caused by (and merges)

Revision ID: 0019_links
Revises: 0014_integrations
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0019_links"
down_revision: str | None = "0014_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_link",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("ticket_id", sa.String(length=32), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("target_id", sa.String(length=32), sa.ForeignKey("ticket.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("merged", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("ticket_id", "target_id", "kind", name="uq_ticket_link"),
        sa.CheckConstraint("kind IN ('duplicate_of', 'related_to', 'caused_by')", name="ck_ticket_link_kind"),
        sa.CheckConstraint("ticket_id <> target_id", name="ck_ticket_link_not_self"),
    )
    op.create_index("ix_ticket_link_target_id", "ticket_link", ["target_id"])
    op.create_index(
        "uq_ticket_link_one_master",
        "ticket_link",
        ["ticket_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'duplicate_of'"),
        sqlite_where=sa.text("kind = 'duplicate_of'"),
    )


def downgrade() -> None:
    op.drop_index("uq_ticket_link_one_master", table_name="ticket_link")
    op.drop_index("ix_ticket_link_target_id", table_name="ticket_link")
    op.drop_table("ticket_link")
