"""index for the reports: ticket events by the status they move into, and when

Revision ID: 0010_report_indexes
Revises: 0009_roster_revision
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_report_indexes"
down_revision: str | None = "0009_roster_revision"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ticket_event_to_status_at", "ticket_event", ["to_status", "at"])


def downgrade() -> None:
    op.drop_index("ix_ticket_event_to_status_at", table_name="ticket_event")
