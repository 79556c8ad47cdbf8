"""API request and response schemas (the HTTP contract, as OpenAPI shows it)."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from models.assets_http import Customer360
from models.integrations import Occurrence
from models.ticket import Action, Priority, TicketState, TicketStatus


class Channel(StrEnum):
    AGENT = "agent"  # an agent creating a ticket by hand
    WEB = "web"
    APP = "app"
    QR = "qr"  # QR-code scan form on the equipment
    BOT = "bot"  # chat bot (WeChat-style)
    ERP = "erp"  # business-system event
    ECOMMERCE = "ecommerce"
    IOT = "iot"  # a device's own alarm (business-system events)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerLookup(_Body):
    """Who the ticket is for: a customer id, or one of their contact identities (resolved to the
    customer holding it; a merged record resolves to the one it was merged into)."""

    id: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    wechat_openid: str | None = Field(default=None, max_length=128)
    wechat_unionid: str | None = Field(default=None, max_length=128)
    app_user: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _one(self) -> "CustomerLookup":
        if not self.given():
            raise ValueError("name the customer: id, phone, email, wechat_openid, wechat_unionid or app_user")
        return self

    def given(self) -> list[tuple[str, str]]:
        """(kind, value) of each way the customer was named, the id first."""
        return [(k, v) for k, v in self.model_dump().items() if v]


class AssetLookup(_Body):
    """What the ticket is about: an asset by id, by the serial on its plate, or by the code of
    the QR sticker on the machine. Exactly one."""

    id: str | None = Field(default=None, max_length=32)
    serial: str | None = Field(default=None, max_length=64)
    qr_code: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _exactly_one(self) -> "AssetLookup":
        if len([v for v in (self.id, self.serial, self.qr_code) if v]) != 1:
            raise ValueError("name the asset by exactly one of id, serial or qr_code")
        return self


class TicketCreate(_Body):
    ticket_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        examples=["equipment_repair"],
        description="A template key. Omitted: the templates' classification rules pick one (and a priority).",
    )
    region: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        examples=["east"],
        description="Required unless an asset or customer is named: then it defaults to the asset's region, "
        "else the customer's.",
    )
    title: str = Field(min_length=1, max_length=200, examples=["Compressor #3 overheating"])
    description: str = Field(default="", max_length=10_000)
    priority: Priority | None = Field(default=None, description="Defaults to the classification's or the template's.")
    channel: Channel = Channel.AGENT
    external_ref: str | None = Field(
        default=None,
        max_length=200,
        description="The caller's own id (ERP alert, order number). Creating twice with the same "
        "external_ref returns the first ticket: duplicates collapse into one.",
    )
    reporter: str | None = Field(default=None, max_length=200, description="Who reported it (customer, device).")
    fields: dict[str, Any] = Field(default_factory=dict, description="Form values.")
    customer: CustomerLookup | None = Field(default=None, description="Who it is for (docs/customers.md).")
    asset: AssetLookup | None = Field(default=None, description="What it is about: the asset, e.g. by its QR code.")


# Action and event bodies are derived from their workflow inputs (models/ticket.py): one
# definition per action.


def body_model(input_model: type[BaseModel]) -> type[BaseModel]:
    """An action's HTTP body: its workflow input without ``actor`` and ``proof`` (the API adds
    them), with the same fields and limits."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in input_model.model_fields.items()
        if name not in ("actor", "proof")
    }
    return create_model(input_model.__name__.removesuffix("Input") + "Body", __base__=_Body, **fields)


# --- responses ---


class TicketEventOut(BaseModel):
    seq: int
    action: str
    actor_id: str
    from_status: TicketStatus | None
    to_status: TicketStatus
    at: datetime
    data: dict[str, Any]


class TicketOut(TicketState):
    allowed_actions: list[Action] = Field(description="What the caller may do now (status, node and role checked)")
    ticket_actions: list[Action] = Field(description="What the ticket's status allows anyone suitable to do now")
    workflow_id: str
    # Where the state came from: the live workflow, or the read model when the workflow
    # could not be asked (retention ended, no worker answering in time).
    source: Literal["workflow", "read_model"] = "workflow"
    events: list[TicketEventOut] | None = Field(
        default=None, description="The latest events (at most 50); GET /tickets/{id}/events pages through all"
    )
    more_events: bool = Field(default=False, description="Older events exist than those in `events`")
    reported: list[Occurrence] = Field(
        default_factory=list,
        description="GET /tickets/{id} only: what business systems reported on this ticket, per source and "
        "rule — how many times, first and last (a repeat adds to the count, not a new ticket)",
    )
    customer_360: Customer360 | None = Field(
        default=None,
        description="GET /tickets/{id} only: the customer's other tickets, assets with warranty and contract, "
        "recent orders and past satisfaction (absent without a customer, or one outside the caller's regions)",
    )
    requests: dict[str, Any] = Field(default_factory=dict, exclude=True)  # de-duplication keys: internal


class TicketEventPage(BaseModel):
    items: list[TicketEventOut]
    next_after_seq: int | None = Field(description="Pass as ?after_seq= for the next page; null on the last page.")


class TicketSummary(BaseModel):
    id: str
    ticket_type: str
    region: str
    priority: Priority
    status: TicketStatus
    assignee: str | None
    title: str
    channel: str
    external_ref: str | None
    sla_breached: bool = False
    escalation: str | None = None
    customer_id: str | None = None
    asset_id: str | None = None
    satisfaction: int | None = None
    created_at: datetime
    updated_at: datetime


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")


class EventAccepted(BaseModel):
    accepted: bool = True


class Problem(BaseModel):
    """Body of every 4xx/5xx the API itself raises (422s from body validation use FastAPI's list form)."""

    detail: str
    code: str
    status: TicketStatus | None = None
    allowed_actions: list[Action] | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]
