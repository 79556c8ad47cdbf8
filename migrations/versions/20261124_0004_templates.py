"""process templates, actor groups and managers, purchase requests

Revision ID: 0004_templates
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_templates"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "template",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", "version", name="uq_template_key_version"),
    )
    op.create_table(
        "purchase_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.String(32), nullable=False, index=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("ticket_id", "sku", name="uq_purchase_request_ticket_sku"),
    )
    with op.batch_alter_table("actor") as batch:
        batch.add_column(sa.Column("groups", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("manager_id", sa.String(64), nullable=True))
    with op.batch_alter_table("ticket") as batch:
        batch.add_column(sa.Column("template_version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("active_nodes", sa.String(1000), nullable=False, server_default=""))
    op.drop_table("ticket_type")


def downgrade() -> None:
    op.create_table(
        "ticket_type",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("default_priority", sa.String(16), nullable=False),
    )
    with op.batch_alter_table("ticket") as batch:
        batch.drop_column("active_nodes")
        batch.drop_column("template_version")
    with op.batch_alter_table("actor") as batch:
        batch.drop_column("manager_id")
        batch.drop_column("groups")
    op.drop_table("purchase_request")
    op.drop_table("template")
