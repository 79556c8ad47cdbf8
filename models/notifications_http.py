"""HTTP schemas of ``/me/notifications`` and ``/me/contact``."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

EMAIL_PATTERN = r"^[^@\s<>]+@[^@\s<>]+$"
PHONE_PATTERN = r"^\+?[0-9][0-9 \-]{5,30}$"


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ticket_id: str
    event: str
    title: str
    body: str
    link: str | None = None
    created_at: datetime
    read_at: datetime | None = None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = None
    unread_count: int = Field(description="Unread items matching the ticket filter (all pages)")


class ReadAllResult(BaseModel):
    marked: int


class ContactIn(BaseModel):
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    phone: str | None = Field(default=None, max_length=32, pattern=PHONE_PATTERN)
    im_user: str | None = Field(default=None, max_length=128)


class ContactOut(ContactIn):
    actor_id: str
