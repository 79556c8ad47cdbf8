"""``AsyncClient``: the asyncio transport for the calls built in ``_core``."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Self, TypeVar

import httpx

from ticketflow_client import _core
from ticketflow_client.models import Created, Ticket, TicketPage, TicketSummary

T = TypeVar("T")
USER_AGENT = "ticketflow-client/0.1 (async)"


class AsyncClient:
    """Ticketflow over HTTP, one API key per client. Pass ``http`` to share a connection pool
    (or to test through a transport; its own ``base_url`` is then used); otherwise the client
    makes and closes its own."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = _core.DEFAULT_TIMEOUT_S,
        max_retries: int = _core.DEFAULT_MAX_RETRIES,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key, self._timeout, self._max_retries = api_key, timeout, max_retries
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _send(self, call: _core.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params or None,
                    json=call.json,
                    content=call.content,
                    headers=_core.headers(self._api_key, call, USER_AGENT),
                    timeout=self._timeout,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):  # never reached the server: safe to repeat
                if attempt >= self._max_retries:
                    raise
                await asyncio.sleep(_core.backoff(attempt))
                attempt += 1
                continue
            wait = _core.retry_wait(response, attempt, self._max_retries)
            if wait is None:
                _core.raise_for(response)
                return call.parse(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def create_ticket(
        self, ticket_type: str, region: str, title: str, *, idempotency_key: str | None = None, **body: Any
    ) -> Created:
        """A new ticket, or (same ``idempotency_key`` again) the one the first request made."""
        return await self._send(
            _core.create_ticket(ticket_type, region, title, idempotency_key=idempotency_key, **body)
        )

    async def get_ticket(self, ticket_id: str) -> Ticket:
        return await self._send(_core.get_ticket(ticket_id))

    async def list_ticket_pages(
        self, *, limit: int = 50, **filters: str | bool | datetime | None
    ) -> AsyncIterator[TicketPage]:
        """Each page of ``GET /tickets`` in turn, following ``next_cursor`` to the last."""
        cursor: str | None = None
        while True:
            page = await self._send(_core.list_page(filters, limit, cursor))
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def list_tickets(
        self, *, limit: int = 50, **filters: str | bool | datetime | None
    ) -> AsyncIterator[TicketSummary]:
        """Every matching ticket, fetched ``limit`` at a time as the iterator is consumed."""
        async for page in self.list_ticket_pages(limit=limit, **filters):
            for item in page.items:
                yield item

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Any API call the typed methods do not cover (templates, people, a CSV import…), with
        this client's key, retries of 429/503 and typed errors; the response as it came."""
        call = _core.raw(
            method,
            path,
            params=params,
            json=json,
            content=content,
            content_type=content_type,
            idempotency_key=idempotency_key,
        )
        return await self._send(call)

    async def act(self, ticket_id: str, action: str, *, idempotency_key: str | None = None, **body: Any) -> Ticket:
        """Take ``action`` (claim, start, resolve…) with ``body`` as its fields; the ticket after it."""
        return await self._send(_core.act(ticket_id, action, idempotency_key, body))

    async def send_event(
        self,
        ticket_id: str,
        name: str,
        *,
        fields: dict[str, Any] | None = None,
        text: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """An event the ticket's template declares (202: the workflow took it)."""
        await self._send(_core.send_event(ticket_id, name, fields, text, idempotency_key))
