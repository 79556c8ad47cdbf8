"""HTTP shapes of links between tickets (``/tickets/{id}/links``) and of merging a duplicate into
its master (``/tickets/{id}/merge``); docs/linked-tickets.md."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.schemas import TicketOut

TicketRef = Annotated[
    str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$", examples=["T01JD3K8Q5M4ZR2XW"])
]


class LinkKind(StrEnum):
    DUPLICATE_OF = "duplicate_of"  # this ticket repeats the target (its master)
    RELATED_TO = "related_to"
    CAUSED_BY = "caused_by"  # the target's problem caused this one


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: LinkKind
    target: TicketRef = Field(description="The ticket this one is a duplicate of / related to / caused by")


class LinkedTicket(BaseModel):
    """The other end of a link, as the caller may see it."""

    id: str
    title: str
    status: str
    region: str
    ticket_type: str


class LinkOut(BaseModel):
    id: str = Field(examples=["lnk_3f9a1c0e5b7d2a48"])
    kind: LinkKind
    ticket_id: str = Field(description="The ticket the link goes from (`ticket_id` —kind→ `target_id`)")
    target_id: str
    direction: Literal["outgoing", "incoming"] = Field(description="Seen from the ticket in the path")
    other: LinkedTicket = Field(description="The ticket at the other end")
    merged: bool = Field(description="Made by a merge: the duplicate was cancelled into its master (final)")
    created_by: str
    created_at: datetime


class LinkList(BaseModel):
    items: list[LinkOut] = Field(description="Links from and to the ticket whose other end the caller may see")


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    into: TicketRef = Field(description="The master: the open ticket the duplicate is merged into")


class MergeOut(BaseModel):
    ticket: TicketOut = Field(description="The duplicate, cancelled as merged")
    link: LinkOut = Field(description="Its duplicate_of link to the master")
