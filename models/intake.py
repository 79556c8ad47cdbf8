"""Opening a ticket from inside the worker (a schedule's firing, a survey's follow-up, a parent's
child): the payloads of the ``intake.open_ticket`` activity. Idempotent by ``key``: the ticket id is
``domain.ids.ticket_id_for_key(key)``, so a retried or repeated call (a schedule firing delivered
twice, a workflow task replayed) finds the ticket it opened the first time."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.common import Priority


class OpenTicket(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1, max_length=200)  # the business key, e.g. "schedule:<id>:<fire time>"
    ticket_type: str = Field(min_length=1, max_length=64)
    region: str = Field(min_length=1, max_length=32)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    priority: Priority | None = None  # None: the template's default
    channel: str = "system"
    created_by: str = "system"  # an actor id (the system, or the person a follow-up is for)
    fields: dict[str, Any] = Field(default_factory=dict)
    customer_id: str | None = None
    asset_id: str | None = None
    external_ref: str | None = None


class OpenedTicket(BaseModel):
    ticket_id: str
    new: bool  # False: the key had opened it before
