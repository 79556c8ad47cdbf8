"""Tracking links (``/t/<token>``) and what a customer does through one.

A link is the only credential of its page: an unguessable token (``secrets.token_urlsafe(32)``)
of which only the SHA-256 is stored, expiring (30 days by default) and revocable. Staff of the
ticket's region — or the channel account that raised the ticket — issue, list and revoke links;
``link_for`` issues one for other services (customer messages).

What the customer does on the page reaches the ticket as the template's customer events, sent
through ``api.services.tickets.send_event`` as the **tracking machine account** (an actor with
role ``channel``, created on first use): the workflow checks that sender as it checks every
other. Each page carries a nonce bound to its link (HMAC under the action signing key), and every
POST must bring it back: another site cannot post to a page it could not read. The nonce also
makes each form's submission idempotent (a double tap sends one event).
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

import store.people
import store.tickets
import store.tracking
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound
from api.services import audit, identity, surveys, templates, tickets
from api.storage import Storage
from domain.access import can_access_region
from domain.lifecycle import TERMINAL
from domain.roles import is_machine
from models.settings import Settings, get_settings
from models.surveys import SurveyView
from models.tables import Ticket
from models.template import TemplateSpec
from models.ticket import ActorRef, TicketState
from models.tracking_http import MAX_TTL_DAYS, TrackingLinkIssued, TrackingLinkOut
from models.tracking_tables import TrackingToken

MACHINE_ID, MACHINE_NAME = "tracking", "Customer tracking page"
CONFIRMED, REPLY, PHOTO = "customer_confirmed", "customer_reply", "customer_photo"
SIGNATURE = "customer_signature"  # the image's address in the text, like a photo
NONCE_TTL_S = 12 * 3600  # a page left open longer is reloaded before it can post
MAX_REPLY = 5_000


# --- links ---


def _out(row: TrackingToken, now: datetime) -> TrackingLinkOut:
    return TrackingLinkOut(
        id=row.id,
        ticket_id=row.ticket_id,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        active=row.valid_at(now),
    )


async def _managed_ticket(session: AsyncSession, actor: ActorRef, ticket_id: str) -> Ticket:
    """The ticket, if ``actor`` may manage its links: staff of its region, or the channel account
    that raised it. Anything else is a 404, as every ticket outside a caller's scope."""
    row = await store.tickets.get(session, ticket_id)
    if row is None or not can_access_region(actor, row.region):
        raise NotFound(f"ticket {ticket_id} not found")
    if is_machine(actor.roles) and row.created_by != actor.id:
        raise NotFound(f"ticket {ticket_id} not found")
    return row


def page_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/t/{token}"


def _new_link(ticket_id: str, created_by: str, ttl_days: int, now: datetime) -> tuple[TrackingToken, str]:
    token = TrackingToken.new_token()
    row = TrackingToken(
        id=TrackingToken.new_id(),
        ticket_id=ticket_id,
        token_hash=TrackingToken.hash(token),
        created_at=now,
        expires_at=now + timedelta(days=ttl_days),
        created_by=created_by,
    )
    return row, token


def _ttl(ttl_days: int | None) -> int:
    days = ttl_days if ttl_days is not None else get_settings().tracking_ttl_days
    return max(1, min(days, MAX_TTL_DAYS))


async def issue(
    session: AsyncSession, actor: ActorRef, ticket_id: str, ttl_days: int | None, base_url: str
) -> TrackingLinkIssued:
    """A new link for the ticket; its URL (the token) is in this answer only."""
    await _managed_ticket(session, actor, ticket_id)
    now = datetime.now(UTC)
    row, token = _new_link(ticket_id, actor.id, _ttl(ttl_days), now)
    store.tracking.add(session, row)
    audit.record(session, actor, "tracking_link.issue", "ticket", ticket_id, None, _audited(row))
    await session.commit()
    return TrackingLinkIssued(**_out(row, now).model_dump(), url=page_url(base_url, token))


async def link_for(session: AsyncSession, ticket_id: str, *, base_url: str, created_by: str) -> str:
    """Issue a new link for ``ticket_id`` on behalf of ``created_by`` (a service, e.g. the
    customer notifications) and return its URL. Commits the session. No caller check: the
    caller is code that already decided the customer hears about this ticket."""
    if await store.tickets.get(session, ticket_id) is None:
        raise NotFound(f"ticket {ticket_id} not found")
    row, token = _new_link(ticket_id, created_by, _ttl(None), datetime.now(UTC))
    store.tracking.add(session, row)
    audit.record(session, created_by, "tracking_link.issue", "ticket", ticket_id, None, _audited(row))
    await session.commit()
    return page_url(base_url, token)


def _audited(row: TrackingToken) -> dict[str, Any]:
    return {"link": row.id, "expires_at": row.expires_at.isoformat(), "revoked_at": row.revoked_at}


async def list_links(session: AsyncSession, actor: ActorRef, ticket_id: str) -> list[TrackingLinkOut]:
    await _managed_ticket(session, actor, ticket_id)
    now = datetime.now(UTC)
    return [_out(row, now) for row in await store.tracking.of_ticket(session, ticket_id)]


async def revoke(session: AsyncSession, actor: ActorRef, ticket_id: str, link_id: str) -> TrackingLinkOut:
    """Revoke a link (at once: its page answers 404 from now on). Revoking it again changes nothing."""
    await _managed_ticket(session, actor, ticket_id)
    row = await store.tracking.get(session, ticket_id, link_id)
    if row is None:
        raise NotFound(f"ticket {ticket_id} has no tracking link {link_id}")
    now = datetime.now(UTC)
    if row.revoked_at is None:
        before = _audited(row)
        store.tracking.revoke(session, row, now)
        audit.record(session, actor, "tracking_link.revoke", "ticket", ticket_id, before, _audited(row))
        await session.commit()
    return _out(row, now)


# --- the page: who is visiting ---


@dataclass(frozen=True)
class Visit:
    """A working link and its ticket (read model)."""

    link: TrackingToken
    ticket: Ticket

    @property
    def state(self) -> TicketState:
        return TicketState.model_validate(self.ticket.snapshot)


async def visit(session: AsyncSession, token: str) -> Visit:
    """The link and ticket of a token; an unknown, malformed, expired or revoked token is the same
    404, whatever the reason."""
    if not 20 <= len(token) <= 64:
        raise NotFound("not found")
    link = await store.tracking.by_hash(session, TrackingToken.hash(token))
    if link is None or not link.valid_at(datetime.now(UTC)):
        raise NotFound("not found")
    ticket = await store.tickets.get(session, link.ticket_id)
    if ticket is None:
        raise NotFound("not found")
    return Visit(link=link, ticket=ticket)


# --- nonces ---


def _nonce_key(settings: Settings, key_id: str | None = None) -> tuple[str, bytes] | None:
    current, keys = settings.signing_keys()
    kid = key_id or current
    key = keys.get(kid)
    if key is None:
        return None
    return kid, hmac.new(key, b"ticketflow tracking page nonce", hashlib.sha256).digest()


def _mac(key: bytes, link_id: str, issued: str, rand: str) -> str:
    return hmac.new(key, f"{link_id}|{issued}|{rand}".encode(), hashlib.sha256).hexdigest()[:32]


def nonce_for(settings: Settings, link: TrackingToken) -> str:
    """A fresh nonce for one rendering of the page of ``link``."""
    found = _nonce_key(settings)
    assert found is not None
    kid, key = found
    issued, rand = str(int(time.time())), secrets.token_urlsafe(9)
    return f"{kid}.{issued}.{rand}.{_mac(key, link.id, issued, rand)}"


def check_nonce(settings: Settings, link: TrackingToken, nonce: str | None) -> None:
    """Forbidden unless ``nonce`` was made for this link's page, by us, within ``NONCE_TTL_S``."""
    parts = (nonce or "").split(".")
    if len(parts) == 4 and parts[1].isascii() and parts[1].isdigit() and len(nonce or "") <= 200:
        kid, issued, rand, mac = parts
        found = _nonce_key(settings, kid)
        age = time.time() - int(issued)
        if (
            found is not None
            and -60 <= age <= NONCE_TTL_S
            and hmac.compare_digest(_mac(found[1], link.id, issued, rand), mac)
        ):
            return
    raise Forbidden("this page has expired: reload it and try again", code="stale_page")


def _request_key(link: TrackingToken, nonce: str, what: str, payload: bytes = b"") -> str:
    """The event's idempotency key: the same form submitted twice from one page is one event."""
    digest = hashlib.sha256(nonce.encode() + b"|" + what.encode() + b"|" + payload).hexdigest()[:40]
    return f"{link.id}:{digest}"


# --- the page: what the customer may do ---


async def machine_actor(session: AsyncSession) -> ActorRef:
    """The tracking page's account, as its person record says (deactivating it stops the page's
    actions); created the first time it is needed."""
    row = await store.tracking.machine_account(session, MACHINE_ID)
    if row is None:
        await store.tracking.add_machine_account(session, MACHINE_ID, MACHINE_NAME)
        await store.people.bump_roster_revision(session)
        audit.record(session, "system", "person.create", "person", MACHINE_ID, None, {"roles": ["channel"]})
        await session.commit()
        row = await store.tracking.machine_account(session, MACHINE_ID)
    if row is None or not row.active or not is_machine(row.roles):
        raise Forbidden("the tracking page may not act on tickets now")
    return identity.actor_ref(row)


def awaits(state: TicketState, spec: TemplateSpec, event: str) -> bool:
    """An active ``wait`` node of the ticket waits for ``event``."""
    for node_id in state.active:
        node = state.nodes.get(node_id)
        if node is not None and node.type == "wait" and getattr(spec.node(node_id), "signal", None) == event:
            return True
    return False


def open_question(state: TicketState) -> str | None:
    """The question put to the customer that is still unanswered, if any (the latest asked)."""
    for node_id in state.active:
        node = state.nodes.get(node_id)
        if node is not None and node.awaiting_info is not None:
            return node.awaiting_info
    return None


async def spec_of(session: AsyncSession, ticket: Ticket) -> TemplateSpec:
    return (await templates.get_version(session, ticket.ticket_type, ticket.template_version or None)).spec


def rating_field(spec: TemplateSpec) -> bool:
    """The confirmation may carry the customer's rating (its event may set ``satisfaction``)."""
    event = spec.event(CONFIRMED)
    return event is not None and store.tickets.SATISFACTION_FIELD in event.fields


def _open(v: Visit) -> None:
    if v.ticket.status in TERMINAL:
        raise Conflict(f"the ticket is {v.ticket.status}", code="ticket_final")


async def confirm(
    session: AsyncSession, client: Client, settings: Settings, v: Visit, nonce: str, rating: int | None
) -> None:
    """The customer confirms the resolution: the ``customer_confirmed`` event, only while a wait
    of the ticket expects it (else it would be kept for a wait that opens later)."""
    check_nonce(settings, v.link, nonce)
    _open(v)
    spec = await spec_of(session, v.ticket)
    if not awaits(v.state, spec, CONFIRMED):
        raise Conflict("there is nothing to confirm now", code="nothing_to_confirm")
    fields: dict[str, Any] = {}
    if rating is not None:
        if not rating_field(spec):
            raise FieldInvalid("rating", "this ticket takes no rating with its confirmation", "not_settable")
        fields[store.tickets.SATISFACTION_FIELD] = rating
    actor = await machine_actor(session)
    key = _request_key(v.link, nonce, CONFIRMED, str(rating).encode())
    await tickets.send_event(session, client, settings, actor, v.ticket.id, CONFIRMED, fields, None, key)


async def reply(session: AsyncSession, client: Client, settings: Settings, v: Visit, nonce: str, text: str) -> None:
    """The customer answers the open information request: ``customer_reply``."""
    check_nonce(settings, v.link, nonce)
    _open(v)
    text = text.strip()
    if not text:
        raise FieldInvalid("text", "write an answer", "missing")
    if "\x00" in text:
        raise FieldInvalid("text", "NUL characters are not allowed", "nul_character")
    if len(text) > MAX_REPLY:
        raise FieldInvalid("text", f"at most {MAX_REPLY} characters", "too_long")
    if open_question(v.state) is None:
        raise Conflict("no question is waiting for an answer", code="nothing_to_answer")
    actor = await machine_actor(session)
    key = _request_key(v.link, nonce, REPLY, text.encode())
    await tickets.send_event(session, client, settings, actor, v.ticket.id, REPLY, {}, text, key)


async def survey_pending(session: AsyncSession, ticket_id: str) -> SurveyView | None:
    """The ticket's survey while it waits for the customer's answer."""
    return await surveys.pending(session, ticket_id)


async def answer_survey(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    v: Visit,
    nonce: str,
    rating: int | None,
    comment: str,
    raw_answers: dict[str, str],
) -> None:
    """The customer rates the service (1-5, the survey's questions, a comment): the survey's one
    answer. ``raw_answers``: question id → the form's text, turned into each question's kind."""
    check_nonce(settings, v.link, nonce)
    survey = await survey_pending(session, v.ticket.id)
    if survey is None:
        raise Conflict("no survey waits for an answer", code="nothing_to_rate")
    if rating is None:
        raise FieldInvalid("rating", "choose a rating from 1 to 5", "missing")
    if any("\x00" in s for s in (comment, *raw_answers.values())):
        raise FieldInvalid("comment", "NUL characters are not allowed", "nul_character")
    answers: dict[str, Any] = {}
    for q in survey.questions:
        raw = raw_answers.get(q.id, "").strip()
        if not raw:
            continue  # the questions are optional
        kind = str(q.kind)
        if kind == "rating":
            answers[q.id] = int(raw) if raw in ("1", "2", "3", "4", "5") else raw
        elif kind == "yes_no":
            answers[q.id] = {"yes": True, "no": False}.get(raw, raw)
        else:
            answers[q.id] = raw
    comment = comment.strip()
    await surveys.answer(session, client, settings, v.ticket.id, rating, comment or None, answers, "tracking")


def file_prefix(ticket_id: str) -> str:
    return f"tickets/{ticket_id}/"


def staff_file_url(base_url: str, ticket_id: str, name: str) -> str:
    """Where staff read an attachment (with their credentials): what the event's text carries.
    Never the page's address: the token stays out of the ticket's history."""
    return f"{base_url.rstrip('/')}/tickets/{ticket_id}/attachments/{name}"


async def add_file(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    storage: Storage,
    v: Visit,
    nonce: str,
    data: bytes,
    content_type: str | None,
    base_url: str,
    signature: bool = False,
) -> str:
    """Store a photo (or the customer's drawn signature, a PNG) and tell the ticket: the
    ``customer_photo`` (or ``customer_signature``) event, the stored file's URL as its text.
    The file's name."""
    check_nonce(settings, v.link, nonce)
    _open(v)
    if signature and not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise FieldInvalid("signature", "a signature is a PNG image", "not_png")
    key = await storage.put(data, content_type or "", prefix=file_prefix(v.ticket.id))
    name = key.rsplit("/", 1)[1]
    text = staff_file_url(base_url, v.ticket.id, name)
    actor = await machine_actor(session)
    event = SIGNATURE if signature else PHOTO
    request_key = _request_key(v.link, nonce, event, hashlib.sha256(data).digest())
    await tickets.send_event(session, client, settings, actor, v.ticket.id, event, {}, text, request_key)
    return name


async def staff_ticket(session: AsyncSession, actor: ActorRef, ticket_id: str) -> Ticket:
    """The ticket, for reading its attachments: staff of its region or the account that raised it."""
    return await _managed_ticket(session, actor, ticket_id)
