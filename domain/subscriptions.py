"""Outbound webhooks, the pure part: which subscription events a ticket event is, whether a
subscription wants a ticket, the event id a subscriber de-duplicates by, and the body it gets.

A ticket event may be several subscription events at once (a resolve is ``status_changed``
and ``resolved``); each is its own delivery with its own event id.
"""

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from models.common import TicketStatus
from models.subscriptions import SubscriptionEvent as E
from models.ticket import TicketEvent

# Someone else now holds the work when these name a person (a dispatch may find nobody).
HANDING = frozenset({"delegate", "return", "offer_expired", "released", "dispatched"})
APPROVAL = frozenset({"approve", "reject"})
SURVEY_ANSWERED = "survey_answered"  # the event the survey service sends the ticket (workflows/survey.py)
ALL_REGIONS = "*"


def events_of(event: TicketEvent) -> list[E]:
    """The subscription events ``event`` is, in a fixed order."""
    before, after, out = event.from_status, event.to_status, []
    if event.action == "created":
        out.append(E.CREATED)
    handed = event.action in HANDING and bool(event.data.get("assignee") or event.data.get("to"))
    entered = before == TicketStatus.NEW and after == TicketStatus.ASSIGNED
    if event.action in ("claim", "assign") or handed or entered:
        out.append(E.ASSIGNED)
    if before is not None and before != after:
        out.append(E.STATUS_CHANGED)
    if event.action == "sla_breach":
        out.append(E.SLA_BREACHED)
    if event.action in APPROVAL:
        out.append(E.APPROVAL_DECIDED)
    if after == TicketStatus.RESOLVED and before != TicketStatus.RESOLVED:
        out.append(E.RESOLVED)
    if after == TicketStatus.CLOSED and before != TicketStatus.CLOSED:
        out.append(E.CLOSED)
    if event.action == SURVEY_ANSWERED:
        out.append(E.SURVEY_ANSWERED)
    return out


def in_regions(regions: Iterable[str], region: str) -> bool:
    held = set(regions)
    return ALL_REGIONS in held or region in held


def wants(
    filters: Mapping[str, Sequence[str]], owner_regions: Sequence[str], region: str, ticket_type: str, source: str
) -> bool:
    """Whether a subscription (its filters, its owner's regions) takes a ticket: always within
    the owner's regions, then each non-empty filter must name the ticket's value."""
    if not in_regions(owner_regions, region):
        return False
    for name, value in (("regions", region), ("ticket_types", ticket_type), ("sources", source)):
        allowed = list(filters.get(name) or [])
        if allowed and value not in allowed:
            return False
    return True


def event_key(subscription_id: str, ticket_id: str, seq: int, event: str) -> str:
    return f"{subscription_id}|{ticket_id}|{seq}|{event}"


def event_id(subscription_id: str, ticket_id: str, seq: int, event: str) -> str:
    """Stable across retries and redeliveries: what the subscriber de-duplicates by."""
    return "evt_" + hashlib.sha256(event_key(subscription_id, ticket_id, seq, event).encode()).hexdigest()[:32]


def body(
    event_id_: str,
    name: str,
    event: TicketEvent,
    ticket: Mapping[str, Any],
    fields: Mapping[str, Any],
    occurred_at: datetime,
) -> dict[str, Any]:
    """The JSON a subscriber gets. ``fields``: the ticket's values its owner may see (the caller
    filtered them); the event's own data carries only the keys below, never form values."""
    data = event.data
    detail: dict[str, Any] = {
        k: data[k] for k in ("node", "level", "level_name", "sla", "resolution", "assignee") if k in data
    }
    if isinstance(data.get("fields"), dict):
        detail["fields"] = {k: v for k, v in data["fields"].items() if k in fields}
    return {
        "event_id": event_id_,
        "event": name,
        "occurred_at": occurred_at.isoformat(),
        "ticket_id": event.ticket_id,
        "seq": event.seq,
        "action": event.action,
        "actor_id": event.actor_id,
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "detail": detail,
        "ticket": {**ticket, "fields": dict(fields)},
    }


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def private_address(host: str) -> bool:
    """An IP literal in a loopback, private, link-local, reserved or unspecified range."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified or ip.is_multicast


def url_problem(url: str, development: bool) -> str | None:
    """Why ``url`` may not be a webhook target, or None. HTTPS to a public host; in development
    also plain HTTP to this machine (a local receiver). Never credentials in the URL, never a
    private or loopback address outside development (the sender checks the resolved address too)."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        return "not a valid URL"
    if not host or parts.scheme not in ("https", "http"):
        return "must be an https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    local = host in LOCAL_HOSTS
    if development and local:
        return None
    if parts.scheme != "https":
        return "must be https:// (plain http only to localhost in development)"
    if local or host.endswith(".localhost") or private_address(host):
        return "must not point at a private, loopback or link-local address"
    return None


# A status-sync body template (an integration source's mapping): Jinja2 in the immutable sandbox,
# an undefined name an error (never a silent blank), ``tojson`` to quote values into JSON.
BODY_TEMPLATES = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def body_template_problem(source: str) -> str | None:
    try:
        BODY_TEMPLATES.from_string(source)
    except TemplateError as exc:
        return f"template does not compile: {exc}"
    return None


def render_body(source: str, payload: Mapping[str, Any]) -> str:
    """The body sent to the source; raises (``TemplateError``…) when it cannot render."""
    return BODY_TEMPLATES.from_string(source).render(**payload)
