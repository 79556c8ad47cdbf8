"""``GET /me/work``: the caller's tasks, offers and approval votes (api/services/work.py)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from models.ticket import Action, NodeStatus, Priority, TicketStatus

Kind = Literal["assigned", "offered", "claimable", "approval"]


class WorkItem(BaseModel):
    ticket_id: str
    title: str
    ticket_type: str
    region: str
    priority: Priority
    status: TicketStatus
    node: str = Field(description="The task or approval node")
    node_name: str
    node_type: Literal["task", "approval"]
    node_status: NodeStatus
    kind: Kind = Field(
        description="assigned: you hold the task (delegated to you included); offered: one of the people it is "
        "offered to; claimable: your user, role or group may claim it; approval: waiting for your vote"
    )
    level: str | None = Field(default=None, description="Approvals: the level waiting for your vote")
    delegated_by: str | None = Field(default=None, description="Who handed this task or vote to you")
    awaiting_info: str | None = Field(default=None, description="The question put to the customer (SLA paused)")
    address: str | None = Field(default=None, description="The site's address, when the ticket has a location")
    lat: float | None = None
    lon: float | None = None
    on_site: bool = Field(default=False, description="A task with check-in / check-out at the site")
    due_at: datetime | None = Field(default=None, description="The soonest deadline: an SLA target or the level's")
    due: Literal["response", "resolution", "approval"] | None = Field(default=None, description="Whose deadline")
    seconds_left: int | None = Field(default=None, description="Until due_at; negative: overdue")
    sla_paused: bool = Field(default=False, description="A clock of the ticket is paused (waiting on the customer)")
    sla_breached: bool = False
    created_at: datetime
    allowed_actions: list[Action] = Field(description="What you may do on the ticket now")


class WorkPage(BaseModel):
    items: list[WorkItem]
    now: datetime = Field(description="The instant seconds_left was computed at")
    truncated: bool = Field(description="More work than listed: the oldest tickets were looked at first")
