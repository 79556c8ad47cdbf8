"""SQLModel table of the links between tickets (docs/linked-tickets.md): one row per link, read
in both directions. Queried by ``store/links.py``; never sent in a Temporal payload (the HTTP
shapes are in ``models/links_http.py``).
"""

import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

# ``ticket_id`` is a duplicate of / related to / caused by ``target_id``.
KINDS = ("duplicate_of", "related_to", "caused_by")
DUPLICATE_OF = "duplicate_of"


class TicketLink(SQLModel, table=True):
    """``ticket_id`` —kind→ ``target_id``. A pair is linked once per kind, never to itself; a
    ticket is the duplicate of one master at most (the partial unique index), and a
    ``merged`` link (``POST /tickets/{id}/merge``: the ticket was cancelled into its master,
    whose events it forwards) is final."""

    __tablename__ = "ticket_link"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "target_id", "kind", name="uq_ticket_link"),
        sa.CheckConstraint("kind IN ('duplicate_of', 'related_to', 'caused_by')", name="ck_ticket_link_kind"),
        sa.CheckConstraint("ticket_id <> target_id", name="ck_ticket_link_not_self"),
        sa.Index("ix_ticket_link_target_id", "target_id"),  # the incoming links of a ticket
        sa.Index(
            "uq_ticket_link_one_master",
            "ticket_id",
            unique=True,
            postgresql_where=sa.text("kind = 'duplicate_of'"),
            sqlite_where=sa.text("kind = 'duplicate_of'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=40)  # "lnk_<hex>"
    ticket_id: str = Field(max_length=32, foreign_key="ticket.id")
    target_id: str = Field(max_length=32, foreign_key="ticket.id")
    kind: str = Field(max_length=16)
    merged: bool = False
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTC_DATETIME)

    @staticmethod
    def new_id() -> str:
        return f"lnk_{secrets.token_hex(8)}"
