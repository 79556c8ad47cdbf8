"""The typed client (clients/python/ticketflow_client) against the real app: the async client
through the ``stack``'s ASGI transport, the sync one over a real socket (uvicorn on a free port,
the client in a thread so the server keeps the event loop)."""

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from ticketflow_client import (
    AsyncClient,
    Client,
    Conflict,
    InvalidSignature,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    verify_webhook,
)

from api.app import create_app
from domain import inbound_auth
from models import demo


def key(actor: str) -> str:
    return demo.demo_api_key(actor)


def client(stack, actor: str) -> AsyncClient:
    return AsyncClient("http://ticketflow.test", key(actor), http=stack.http)


async def test_create_with_an_idempotency_key_twice_is_one_ticket(stack):
    wang = client(stack, "agent-wang")
    k = f"client-{uuid.uuid4().hex}"
    first = await wang.create_ticket("general", "east", "Chiller alarm", idempotency_key=k, priority="high")
    again = await wang.create_ticket("general", "east", "Chiller alarm", idempotency_key=k, priority="high")
    assert first.created and not again.created
    assert again.ticket.id == first.ticket.id
    assert (first.ticket.status, first.ticket.region, first.ticket.priority) == ("new", "east", "high")
    # The same key with another body is refused, naming the header.
    with pytest.raises(ValidationFailed) as exc:
        await wang.create_ticket("general", "east", "Another title", idempotency_key=k)
    assert exc.value.status == 422 and any("Idempotency-Key" in f for f in exc.value.fields)


async def test_act_through_a_tickets_life(stack):
    wang, li = client(stack, "agent-wang"), client(stack, "eng-li")
    tid = (await wang.create_ticket("general", "east", "Belt slipping")).ticket.id
    # The 201 comes once Temporal took the ticket; its first task opens a moment later.
    for _ in range(100):
        if "claim" in (allowed := (await li.get_ticket(tid)).allowed_actions):
            break
        await asyncio.sleep(0.05)
    assert "claim" in allowed
    assert (await li.act(tid, "claim")).status == "assigned"
    assert (await li.act(tid, "start", idempotency_key=f"{tid}-start")).status == "in_progress"
    # The same key again is the first outcome, not a second action.
    assert (await li.act(tid, "start", idempotency_key=f"{tid}-start")).status == "in_progress"
    resolved = await li.act(tid, "resolve", resolution="belt re-tensioned")
    assert (resolved.status, resolved.resolution, resolved.assignee) == ("resolved", "belt re-tensioned", "eng-li")
    closed = await wang.act(tid, "close")
    assert closed.status == "closed" and closed.allowed_actions == [] and closed.raw["ticket_id"] == tid
    with pytest.raises(Conflict) as exc:
        await li.act(tid, "comment", text="too late")
    assert exc.value.status == 409 and exc.value.code == "invalid_transition"
    assert exc.value.status_now == "closed" and exc.value.allowed_actions == []


async def test_list_follows_next_cursor_over_several_pages(stack):
    wang = client(stack, "agent-wang")
    since = datetime.now(UTC) - timedelta(seconds=1)
    kind = "general"
    made = {(await wang.create_ticket(kind, "east", f"Pump {i}")).ticket.id for i in range(5)}
    pages = [p async for p in wang.list_ticket_pages(limit=2, region="east", created_from=since)]
    assert len(pages) >= 3 and all(len(p.items) <= 2 for p in pages) and pages[-1].next_cursor is None
    listed = [t.id async for t in wang.list_tickets(limit=2, region="east", created_from=since)]
    assert len(listed) == len(set(listed)) and made <= set(listed)
    assert listed == [t.id for p in pages for t in p.items]
    # South's agent sees none of east's tickets (and may not ask for east).
    chen = client(stack, "agent-chen")
    assert not made & {t.id async for t in chen.list_tickets(limit=200, created_from=since)}


async def test_errors_are_typed(stack):
    wang = client(stack, "agent-wang")
    with pytest.raises(ValidationFailed) as exc:
        await wang.create_ticket("general", "east", "")
    assert exc.value.status == 422 and "body.title" in exc.value.fields
    assert exc.value.problems[0]["loc"] == ["body", "title"]
    with pytest.raises(ValidationFailed) as exc:
        await wang.list_tickets(limit=2, cursor="not-a-cursor").__anext__()
    assert "query.cursor" in exc.value.fields

    with pytest.raises(NotFound) as nf:
        await wang.get_ticket("TNOSUCHTICKET")
    assert nf.value.status == 404 and nf.value.code == "not_found"
    south = (await client(stack, "agent-chen").create_ticket("general", "south", "Guangzhou leak")).ticket.id
    with pytest.raises(NotFound):  # another region's ticket does not exist for this caller
        await wang.get_ticket(south)
    with pytest.raises(NotFound):
        await wang.act(south, "comment", text="hello")

    stranger = AsyncClient("http://ticketflow.test", "not-a-key", http=stack.http)
    with pytest.raises(Unauthorized) as un:
        await stranger.get_ticket(south)
    assert un.value.status == 401 and un.value.code == "unauthenticated"


async def test_send_event_reaches_the_ticket(stack):
    wang = client(stack, "agent-wang")
    tid = (await wang.create_ticket("general", "east", "Noise")).ticket.id
    with pytest.raises(ValidationFailed):  # the general template declares no such event
        await wang.send_event(tid, "teleported")
    with pytest.raises(NotFound):
        await wang.send_event("TNOSUCHTICKET", "customer_confirmed")


def test_retries_honour_retry_after_then_give_up():
    """Retrying is the client's own logic, so here the server is a scripted transport."""
    seen: list[float] = []

    def busy(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) < 3:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "busy", "code": "unavailable"})
        return httpx.Response(200, json={"items": [], "next_cursor": None})

    with Client("http://x", "k", http=httpx.Client(transport=httpx.MockTransport(busy), base_url="http://x")) as c:
        assert list(c.list_tickets()) == [] and len(seen) == 3

    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"}, json={"detail": "slow down", "code": "rate"})

    http = httpx.Client(transport=httpx.MockTransport(limited), base_url="http://x")
    with pytest.raises(RateLimited) as exc:  # an hour is beyond the bound: raised, not waited for
        Client("http://x", "k", http=http).get_ticket("T1")
    assert exc.value.retry_after == 3600 and exc.value.status == 429


def test_verify_webhook_accepts_what_the_server_signs():
    secret, body, now = "whsec-" + uuid.uuid4().hex, b'{"event":"resolved","ticket_id":"T1"}', int(time.time())
    header = inbound_auth.sign(secret, now, body)
    assert verify_webhook(secret, str(now), header, body) == now
    assert verify_webhook(secret, str(now), f"v1={'0' * 64}, {header}", body) == now  # rotation: any one
    refused = [
        (secret, str(now), header, body + b" "),  # tampered body
        (secret + "x", str(now), header, body),  # another secret
        (secret, str(now + 1), header, body),  # another timestamp
        (secret, str(now - 301), inbound_auth.sign(secret, now - 301, body), body),  # stale
        (secret, str(now + 301), inbound_auth.sign(secret, now + 301, body), body),  # from the future
        (secret, "１２３", header, body),  # not ASCII digits
        (secret, None, header, body),
        (secret, str(now), None, body),
        (secret, str(now), header.removeprefix("v1="), body),  # no scheme
    ]
    for args in refused:
        with pytest.raises(InvalidSignature):
            verify_webhook(*args)
    assert verify_webhook(secret, str(now - 301), inbound_auth.sign(secret, now - 301, body), body, tolerance_s=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(stack) -> AsyncIterator[str]:
    """The stack's app on a real socket, in this test's event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(stack.settings, client=stack.client), port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started, task.exception() if task.done() else "uvicorn did not start in 10 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_request_covers_calls_without_a_typed_method(stack):
    """``request``: any call, with the key, the typed errors and a body that is not JSON."""
    admin = client(stack, "admin")
    exported = await admin.request("GET", "/templates/general/export")
    assert exported.status_code == 200 and "key: general" in exported.text
    again = await admin.request("POST", "/templates/import", content=exported.text, content_type="application/yaml")
    assert again.status_code == 200, again.text  # the same template: nothing new published
    assert again.json()["key"] == "general"
    with pytest.raises(ValidationFailed) as exc:  # a YAML body that is no template: the API's 422, typed
        await admin.request("POST", "/templates/import", content="key: [", content_type="application/yaml")
    assert exc.value.status == 422
    with pytest.raises(ValidationFailed):  # JSON bodies as well
        await admin.request("POST", "/templates/validate", json={"key": "x"})
    with pytest.raises(NotFound):
        await admin.request("GET", "/templates/no-such-template")
    with pytest.raises(ValueError):
        await admin.request("POST", "/templates/validate", json={}, content="x")


async def test_sync_client_over_a_real_socket(served):
    def scenario() -> None:
        with Client(served, key("agent-wang"), timeout=20) as wang, Client(served, key("eng-li")) as li:
            k, since = f"sync-{uuid.uuid4().hex}", datetime.now(UTC) - timedelta(seconds=1)
            first = wang.create_ticket("general", "east", "Door sensor", idempotency_key=k)
            again = wang.create_ticket("general", "east", "Door sensor", idempotency_key=k)
            assert first.created and not again.created and again.ticket.id == first.ticket.id
            tid = first.ticket.id
            assert li.act(tid, "claim").status == "assigned"
            assert li.act(tid, "start").status == "in_progress"
            assert li.act(tid, "resolve", resolution="sensor replaced").status == "resolved"
            assert wang.act(tid, "close").status == "closed"
            assert wang.get_ticket(tid).status == "closed"
            assert tid in {t.id for t in wang.list_tickets(limit=1, status="closed", region="east", created_from=since)}
            with pytest.raises(ValidationFailed) as exc:
                wang.act(tid, "comment")  # no text: named before the status is even looked at
            assert "body.text" in exc.value.fields
            with pytest.raises(NotFound):
                wang.get_ticket("TNOSUCHTICKET")
            with Client(served, "wrong") as stranger, pytest.raises(Unauthorized):
                stranger.get_ticket(tid)
            assert wang.request("GET", f"/tickets/{tid}/events").json()["items"][0]["action"] == "created"

    await asyncio.to_thread(scenario)
