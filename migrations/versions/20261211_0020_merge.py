"""merge the schedules, surveys, tracking, customer messages and links branches (issue #12)

Revision ID: 0020_merge
Revises: 0015_schedules, 0016_surveys, 0017_tracking, 0018_customer_messages, 0019_links
Create Date: 2026-12-11
"""

from collections.abc import Sequence

revision: str = "0020_merge"
down_revision: tuple[str, ...] = (
    "0015_schedules",
    "0016_surveys",
    "0017_tracking",
    "0018_customer_messages",
    "0019_links",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
