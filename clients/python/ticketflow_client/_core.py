"""Everything the sync and async clients share: how each call's request is built, how an answer
is read (or turned into an exception), and how long to wait before a retry.

The two clients only send: ``Call`` is the request plus the function that reads its answer, so
there is one implementation of the API and two thin transports over httpx.
"""

import email.utils
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from ticketflow_client import errors
from ticketflow_client.models import Created, Ticket, TicketPage

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 503})
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RETRIES = 3
BACKOFF_BASE_S = 0.5
MAX_WAIT_S = 30.0  # a Retry-After longer than this is not waited for: the error is raised


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | str | None = None  # a body that is not JSON (a CSV, a YAML document)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _key(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise errors.TicketflowError(response.status_code, f"unreadable body: {response.text[:200]!r}") from exc


def _model(model: type[Any], response: httpx.Response) -> Any:
    data = _json(response)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise errors.TicketflowError(response.status_code, f"unexpected answer: {exc}", body=data) from exc


def _ticket(response: httpx.Response) -> Ticket:
    ticket: Ticket = _model(Ticket, response)
    ticket.raw = _json(response)
    return ticket


def _created(response: httpx.Response) -> Created:
    return Created(ticket=_ticket(response), created=response.status_code == 201)


def _page(response: httpx.Response) -> TicketPage:
    page: TicketPage = _model(TicketPage, response)
    return page


def _none(_response: httpx.Response) -> None:
    return None


def _as_is(response: httpx.Response) -> httpx.Response:
    return response


def raw(
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    content_type: str | None = None,
    idempotency_key: str | None = None,
) -> Call[httpx.Response]:
    """Any request, answered with the response itself (errors still raise the typed errors)."""
    if json is not None and content is not None:
        raise ValueError("send json or content, not both")
    headers = {**_key(idempotency_key), **({"Content-Type": content_type} if content_type else {})}
    return Call(method.upper(), path, _as_is, params=params or {}, json=json, headers=headers, content=content)


def create_ticket(
    ticket_type: str,
    region: str,
    title: str,
    *,
    idempotency_key: str | None = None,
    **body: Any,
) -> Call[Created]:
    payload = {"ticket_type": ticket_type, "region": region, "title": title, **body}
    return Call("POST", "/tickets", _created, json=payload, headers=_key(idempotency_key))


def get_ticket(ticket_id: str) -> Call[Ticket]:
    return Call("GET", f"/tickets/{_seg(ticket_id)}", _ticket)


def list_page(filters: Mapping[str, Any], limit: int, cursor: str | None) -> Call[TicketPage]:
    params = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items() if v is not None}
    params["limit"] = limit
    if cursor:
        params["cursor"] = cursor
    return Call("GET", "/tickets", _page, params=params)


def act(ticket_id: str, action: str, idempotency_key: str | None, body: dict[str, Any]) -> Call[Ticket]:
    path = f"/tickets/{_seg(ticket_id)}/actions/{_seg(action)}"
    return Call("POST", path, _ticket, json=body or None, headers=_key(idempotency_key))


def send_event(
    ticket_id: str, name: str, fields: dict[str, Any] | None, text: str | None, idempotency_key: str | None
) -> Call[None]:
    payload: dict[str, Any] = {"name": name}
    if fields:
        payload["fields"] = fields
    if text is not None:
        payload["text"] = text
    return Call("POST", f"/tickets/{_seg(ticket_id)}/events", _none, json=payload, headers=_key(idempotency_key))


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta-seconds or an HTTP date), None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_wait(response: httpx.Response, attempt: int, max_retries: int) -> float | None:
    """Seconds to wait before trying ``response``'s request again, or None not to retry: only
    429 and 503, at most ``max_retries`` times, the server's Retry-After if it asked for one
    (not beyond ``MAX_WAIT_S``), else exponential backoff."""
    if response.status_code not in RETRY_STATUSES or attempt >= max_retries:
        return None
    asked = retry_after(response)
    if asked is not None:
        return asked if asked <= MAX_WAIT_S else None
    return backoff(attempt)


def backoff(attempt: int) -> float:
    """Seconds before retry number ``attempt + 1`` when the server named no time: 0.5, 1, 2…"""
    return min(BACKOFF_BASE_S * (1 << attempt), MAX_WAIT_S)


def raise_for(response: httpx.Response) -> None:
    """Nothing for a 2xx; else the typed exception for the answer."""
    status = response.status_code
    if status < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    detail_value = body.get("detail") if isinstance(body, dict) else body
    code = body.get("code") if isinstance(body, dict) else None
    if status == 422 and isinstance(detail_value, list):
        problems = [p for p in detail_value if isinstance(p, dict)]
        raise errors.ValidationFailed(status, "; ".join(str(p.get("msg")) for p in problems), problems, body)
    detail = str(detail_value)
    if status == 429:
        raise errors.RateLimited(status, detail, code, body, retry_after(response))
    kind: type[errors.TicketflowError] = {
        401: errors.Unauthorized,
        403: errors.Forbidden,
        404: errors.NotFound,
        409: errors.Conflict,
        422: errors.ValidationFailed,
    }.get(status, errors.ServerError if status >= 500 else errors.TicketflowError)
    if kind is errors.ValidationFailed:
        raise errors.ValidationFailed(status, detail, [], body)
    raise kind(status, detail, code, body)


def headers(api_key: str, call: Call[Any], user_agent: str) -> dict[str, str]:
    return {"X-API-Key": api_key, "User-Agent": user_agent, "Accept": "application/json", **call.headers}
