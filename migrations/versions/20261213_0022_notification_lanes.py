"""notification_outbox.next_attempt_at: the delivery loop's backoff per row (issue #13)

Rows written before take their ``updated_at``: a row still pending is due at once, and the
loop (``activities/notify.py`` ``run``) sends it.

Revision ID: 0022_notification_lanes
Revises: 0021_subscriptions
Create Date: 2026-12-13
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0022_notification_lanes"
down_revision: str | None = "0021_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE notification_outbox SET next_attempt_at = updated_at")
    with op.batch_alter_table("notification_outbox") as batch:
        batch.alter_column("next_attempt_at", existing_type=UTCDateTime(), nullable=False)
        batch.create_index("ix_notification_outbox_due", ["channel", "status", "next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_index("ix_notification_outbox_due")
        batch.drop_column("next_attempt_at")
