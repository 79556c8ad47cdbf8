"""A small typed client for the Ticketflow API: ``Client`` (blocking) and ``AsyncClient``
(asyncio), the same calls over one implementation (``_core``), and ``verify_webhook`` for what
Ticketflow signs."""

from ticketflow_client._async import AsyncClient
from ticketflow_client._sync import Client
from ticketflow_client.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TicketflowError,
    Unauthorized,
    ValidationFailed,
)
from ticketflow_client.models import Created, Ticket, TicketPage, TicketSummary
from ticketflow_client.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, InvalidSignature, verify_webhook

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AsyncClient",
    "Client",
    "Conflict",
    "Created",
    "Forbidden",
    "InvalidSignature",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Ticket",
    "TicketPage",
    "TicketSummary",
    "TicketflowError",
    "Unauthorized",
    "ValidationFailed",
    "verify_webhook",
]
