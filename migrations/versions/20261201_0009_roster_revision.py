"""roster revision: one counter bumped with every write to people, so dispatch workers
rebuild their cached rosters at once instead of after a TTL

Revision ID: 0009_roster_revision
Revises: 0008_people_profile
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_roster_revision"
down_revision: str | None = "0008_people_profile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "roster_revision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="0"),
    )
    op.bulk_insert(table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("roster_revision")
