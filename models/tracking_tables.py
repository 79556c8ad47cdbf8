"""SQLModel table of the customers' tracking links (``/t/<token>``): one row per link issued for
a ticket, holding the SHA-256 of its token — never the token, which is shown once, in the reply
that issues it. Queried by ``store/tracking.py``; never sent in a Temporal payload. See
docs/tracking.md.
"""

import hashlib
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.tables import UTC_DATETIME

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits


class TrackingToken(SQLModel, table=True):
    """A link a customer follows their ticket with. It works while it is neither revoked nor
    expired; a ticket may have several (one per message sent, say), each revoked on its own."""

    __tablename__ = "tracking_token"
    __table_args__ = (sa.Index("ix_tracking_token_ticket_id", "ticket_id", "created_at"),)

    id: str = Field(primary_key=True, max_length=40)  # "trk_<hex>": safe to show, list and log
    ticket_id: str = Field(max_length=32, foreign_key="ticket.id")
    token_hash: str = Field(max_length=64, unique=True)  # sha256 hex of the token
    created_at: datetime = Field(sa_type=UTC_DATETIME)
    expires_at: datetime = Field(sa_type=UTC_DATETIME)
    revoked_at: datetime | None = Field(default=None, sa_type=UTC_DATETIME)
    created_by: str = Field(max_length=64)

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(TOKEN_BYTES)

    @staticmethod
    def new_id() -> str:
        return f"trk_{secrets.token_hex(8)}"

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
