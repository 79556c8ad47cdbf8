"""identity and audit: API keys in their own table, and the audit log

API keys: several per person, expiring, revocable; ``actor.api_key_hash`` moves into
``api_key`` and the column goes.

Revision ID: 0011_identity_and_audit
Revises: 0010_report_indexes
Create Date: 2026-12-08

Each key that existed before gets a fresh public id and expires ``MIGRATED_KEY_TTL`` after the
upgrade (keys had no lifetime before: their holders rotate them with
``POST /people/{id}/api-keys``). A deactivated person's hash was already cleared.
"""

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0011_identity_and_audit"
down_revision: str | None = "0010_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIGRATED_KEY_TTL = timedelta(days=90)


def upgrade() -> None:
    api_key = op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("actor_id", sa.String(length=64), sa.ForeignKey("actor.id"), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_key_actor_id", "api_key", ["actor_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("credential", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id", "id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_id", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "id"])

    conn = op.get_bind()
    actor = sa.table("actor", sa.column("id", sa.String), sa.column("api_key_hash", sa.String))
    now = datetime.now(UTC)
    rows = conn.execute(sa.select(actor.c.id, actor.c.api_key_hash).where(actor.c.api_key_hash.is_not(None))).all()
    if rows:
        op.bulk_insert(api_key, [
            {"id": f"key_{secrets.token_hex(8)}", "actor_id": actor_id, "key_hash": key_hash,
             "label": "issued before keys expired (migrated)", "created_at": now, "created_by": "migration",
             "expires_at": now + MIGRATED_KEY_TTL, "revoked_at": None}
            for actor_id, key_hash in rows
        ])
    with op.batch_alter_table("actor") as batch:
        batch.drop_column("api_key_hash")


def downgrade() -> None:
    with op.batch_alter_table("actor") as batch:
        batch.add_column(sa.Column("api_key_hash", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_actor_api_key_hash", ["api_key_hash"])
    # Back to one key per person: the newest that still works.
    conn = op.get_bind()
    now = datetime.now(UTC)
    key = sa.table("api_key", sa.column("actor_id", sa.String), sa.column("key_hash", sa.String),
                   sa.column("created_at", UTCDateTime()), sa.column("expires_at", UTCDateTime()),
                   sa.column("revoked_at", UTCDateTime()))
    actor = sa.table("actor", sa.column("id", sa.String), sa.column("api_key_hash", sa.String))
    newest: dict[str, str] = {}
    for actor_id, key_hash in conn.execute(
        sa.select(key.c.actor_id, key.c.key_hash)
        .where(key.c.revoked_at.is_(None), sa.or_(key.c.expires_at.is_(None), key.c.expires_at > now))
        .order_by(key.c.created_at)
    ):
        newest[actor_id] = key_hash
    for actor_id, key_hash in newest.items():
        conn.execute(sa.update(actor).where(actor.c.id == actor_id).values(api_key_hash=key_hash))
    op.drop_table("audit_log")
    op.drop_index("ix_api_key_actor_id", table_name="api_key")
    op.drop_table("api_key")
