"""merge the inventory, notifications and templates branches

Revision ID: 0005_merge
Revises: 0002_inventory, 0003_notifications, 0004_templates
Create Date: 2026-11-24
"""

from collections.abc import Sequence

revision: str = "0005_merge"
down_revision: tuple[str, ...] = ("0002_inventory", "0003_notifications", "0004_templates")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
