"""Tickets and their events: every query on the read model's ``ticket`` rows and their
``ticket_event`` history.

The API writes a ticket's row at intake (``insert_intake``; ``forget_intake`` if the workflow
then does not start); the projection activity keeps it current (``record_changes``: idempotent
by ``(ticket_id, seq)``, and the row only moves forward). Reads: one ticket, its events, keyset
pages of tickets, the open-ticket load per assignee (dispatch, ``/people``), the tickets a
person holds (someone leaving). The reports' aggregates over the same tables are in
``store/reports.py``.
"""

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import Database, json_text_contains, upsert_statement
from models.tables import Ticket, TicketEventRow
from models.ticket import TicketEvent, TicketState
from store import customer_messages, keyset, subscriptions

OPEN_STATUSES = ("new", "assigned", "in_progress")  # a ticket in one of these counts towards its assignee's load


SATISFACTION_FIELD = "satisfaction"  # a number field 1-5 the customer sets when confirming (docs/customers.md)


def satisfaction(fields: dict[str, Any]) -> int | None:
    """The customer's rating among the ticket's fields, if it is a whole number from 1 to 5."""
    value = fields.get(SATISFACTION_FIELD)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        rating = float(value)
    except ValueError:
        return None
    return int(rating) if rating.is_integer() and 1 <= rating <= 5 else None


def ticket_row(state: TicketState) -> dict[str, Any]:
    """The ticket table's columns for a state (the intake row and the projection's)."""
    return {
        "id": state.ticket_id,
        "ticket_type": state.ticket_type,
        "region": state.region,
        "priority": state.priority.value,
        "status": state.status.value,
        "assignee": state.assignee,
        "title": state.title,
        "template_version": state.template_version,
        "active_nodes": "," + ",".join(state.active) + "," if state.active else "",
        "channel": state.channel,
        "external_ref": state.external_ref,
        "customer_id": state.customer_id,
        "asset_id": state.asset_id,
        "satisfaction": satisfaction(state.fields),
        "created_by": state.created_by,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "closed_at": state.closed_at,
        "sla_breached": state.sla.breached,
        "escalation": state.sla.escalation,
        "seq": state.seq,
        "snapshot": state.model_dump(mode="json"),
    }


# --- writes ---


async def insert_intake(session: AsyncSession, state: TicketState, key: str | None, request_hash: str) -> None:
    """The ticket's row before its workflow starts (the caller commits). A row with this id
    already there (the same key a moment ago) raises IntegrityError."""
    row = {**ticket_row(state), "idempotency_key": key, "request_hash": request_hash}
    await session.exec(sa.insert(Ticket).values(**row))  # type: ignore[call-overload]


async def forget_intake(session: AsyncSession, ticket_id: str) -> None:
    """Delete the intake row, unless the projection already wrote to it (the caller commits)."""
    await session.exec(sa.delete(Ticket).where(col(Ticket.id) == ticket_id, col(Ticket.seq) == 0))  # type: ignore[call-overload]


@functools.cache
def _projection_statements(dialect: str, rebuild: bool, columns: tuple[str, ...]) -> tuple[sa.Insert, sa.Insert]:
    """The ticket row's upsert and the events' insert, built once per backend (and kind of
    write) and executed with the values as parameters: building them anew for every write
    was half of the projection's CPU in bench/lifecycle.py's profile."""
    ticket = Ticket.__table__
    upsert = upsert_statement(dialect, ticket)
    # A rebuild also puts right what the projection never changes (the workflow's is the truth).
    kept = ("id", "satisfaction") if rebuild else ("id", "created_at", "created_by", "satisfaction")
    mutable = {k: upsert.excluded[k] for k in columns if k not in kept}
    # A rating, once given (the confirmation's field, or a survey answer written by its own
    # service), is never cleared by a later state without one.
    mutable["satisfaction"] = sa.func.coalesce(upsert.excluded.satisfaction, ticket.c.satisfaction)
    forward = ticket.c.seq <= upsert.excluded.seq if rebuild else ticket.c.seq < upsert.excluded.seq
    upsert = upsert.on_conflict_do_update(index_elements=[ticket.c.id], set_=mutable, where=forward)
    append = upsert_statement(dialect, TicketEventRow.__table__)
    key = ["ticket_id", "seq"]
    if rebuild:
        changed = ("action", "actor_id", "from_status", "to_status", "at", "data")
        append = append.on_conflict_do_update(index_elements=key, set_={c: append.excluded[c] for c in changed})
    else:
        append = append.on_conflict_do_nothing(index_elements=key)
    return upsert, append


async def record_changes(
    db: Database, state: TicketState, events: Sequence[TicketEvent], *, rebuild: bool = False
) -> None:
    """The state after ``events`` and the events themselves, in one transaction. A retry inserts
    nothing twice, and the row only ever moves forward (``WHERE ticket.seq < excluded.seq``), so
    late or repeated writes cannot reorder it.

    ``rebuild``: the same changes again, re-projected from the workflow's history
    (``python -m cli rebuild-read-model``). Nothing is sent again — no customer message, no
    webhook delivery: they went out when the changes first happened — and what is there is put
    right: the row is rewritten at the same seq too (still never moved back, so a live ticket's
    projector is not undone) and events already there are rewritten."""
    dialect = db.engine.dialect.name
    row = ticket_row(state)
    events_rows = [
        {
            "ticket_id": event.ticket_id,
            "seq": event.seq,
            "action": event.action,
            "actor_id": event.actor_id,
            "from_status": event.from_status.value if event.from_status else None,
            "to_status": event.to_status.value,
            "at": event.at,
            "data": event.data,
        }
        for event in events
    ]
    upsert, append = _projection_statements(dialect, rebuild, tuple(row))
    async with db.engine.begin() as conn:  # one transaction
        await conn.execute(upsert, row)  # ticket row first: the event row references it
        if events_rows:
            await conn.execute(append, events_rows)
        if not rebuild:
            await customer_messages.record(conn, state, events)  # what the customer is told, in the same commit
            await subscriptions.record(conn, state, events)  # webhook deliveries to subscribers, in the same commit


# --- reads ---


async def get(session: AsyncSession, ticket_id: str, fresh: bool = False) -> Ticket | None:
    """The ticket row; ``fresh`` reads it again from the database (the projection may have moved it)."""
    return await session.get(Ticket, ticket_id, populate_existing=fresh)


async def latest_events(session: AsyncSession, ticket_id: str, n: int) -> list[TicketEventRow]:
    """The ticket's last ``n`` events, newest first."""
    q = (
        select(TicketEventRow)
        .where(TicketEventRow.ticket_id == ticket_id)
        .order_by(col(TicketEventRow.seq).desc())
        .limit(n)
    )
    return list(await session.exec(q))


async def events_after(session: AsyncSession, ticket_id: str, after_seq: int, n: int) -> list[TicketEventRow]:
    """At most ``n`` events after ``after_seq``, in seq order."""
    q = (
        select(TicketEventRow)
        .where(TicketEventRow.ticket_id == ticket_id, col(TicketEventRow.seq) > after_seq)
        .order_by(col(TicketEventRow.seq))
        .limit(n)
    )
    return list(await session.exec(q))


async def page(
    session: AsyncSession,
    *,
    regions: list[str] | None,
    status: str | None = None,
    region: str | None = None,
    priority: str | None = None,
    assignee: str | None = None,
    ticket_type: str | None = None,
    sla_breached: bool | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    created_by: str | None = None,
    customer_ids: list[str] | None = None,
    asset_id: str | None = None,
    limit: int,
    after: keyset.Key | None = None,
) -> tuple[list[Ticket], str | None]:
    """Newest first, keyset-paged on (created_at, id); ``regions`` None: every region."""
    q = select(Ticket)
    if regions is not None:
        q = q.where(col(Ticket.region).in_(regions))
    conditions: list[Any] = []
    for column, value in (
        (Ticket.status, status),
        (Ticket.region, region),
        (Ticket.priority, priority),
        (Ticket.assignee, assignee),
        (Ticket.ticket_type, ticket_type),
        (Ticket.sla_breached, sla_breached),
        (Ticket.created_by, created_by),
        (Ticket.asset_id, asset_id),
    ):
        if value is not None:
            conditions.append(col(column) == value)
    if customer_ids is not None:  # a customer and the records merged into it
        conditions.append(col(Ticket.customer_id).in_(customer_ids))
    if created_from:
        conditions.append(col(Ticket.created_at) >= created_from)
    if created_to:
        conditions.append(col(Ticket.created_at) < created_to)
    if after is not None:
        conditions.append(keyset.before([col(Ticket.created_at), col(Ticket.id)], after))
    if conditions:
        q = q.where(*conditions)
    q = q.order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc()).limit(limit + 1)
    return keyset.page(list(await session.exec(q)), limit, lambda t: (t.created_at, t.id))


def load_query(person_ids: list[str] | None = None) -> Any:
    """Open tickets per assignee (everyone's, or only ``person_ids``'): rows (assignee, count)."""
    q = select(Ticket.assignee, sa.func.count()).where(
        col(Ticket.assignee).is_not(None), col(Ticket.status).in_(OPEN_STATUSES)
    )
    if person_ids is not None:
        q = q.where(col(Ticket.assignee).in_(person_ids))
    return q.group_by(Ticket.assignee)


async def loads(session: AsyncSession, person_ids: list[str] | None = None) -> dict[str, int]:
    """The load dispatch weighs and ``GET /people`` shows: open tickets (new, assigned, in
    progress) per assignee, everyone's or only ``person_ids``'."""
    if person_ids is not None and not person_ids:
        return {}
    return {assignee: n for assignee, n in (await session.exec(load_query(person_ids))).all()}


async def held_by(session: AsyncSession, person_id: str) -> list[str]:
    """Tickets not closed or cancelled where ``person_id`` holds work (``holds``), by id: the
    read model's snapshots, pre-filtered in SQL on their text."""
    q = select(Ticket.id, Ticket.snapshot).where(
        col(Ticket.status).not_in(("closed", "cancelled")), json_text_contains(Ticket.snapshot, json.dumps(person_id))
    )
    return sorted(tid for tid, snapshot in (await session.exec(q)).all() if holds(snapshot or {}, person_id))


def holds(snapshot: dict[str, Any], person_id: str) -> bool:
    """An active node of the ticket is a task ``person_id`` holds, is offered or delegated, or
    an approval they sit on or delegated their vote in."""
    nodes = snapshot.get("nodes") or {}
    for node_id in snapshot.get("active") or []:
        node = nodes.get(node_id) or {}
        # Offers: a list since issue #10; snapshots written before kept them as candidates="offer:a,b".
        legacy = str(node.get("candidates") or "")
        offers = node.get("offers") or (legacy.removeprefix("offer:").split(",") if legacy.startswith("offer:") else [])
        if (
            node.get("assignee") == person_id
            or person_id in (node.get("approvers") or [])
            or person_id in (node.get("delegations") or {}).values()
            or person_id in offers
        ):
            return True
    return False
