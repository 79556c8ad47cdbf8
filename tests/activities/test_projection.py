"""The projection activity against the real database: idempotent and never reordered."""

from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.projection import record_ticket_changes
from domain.ids import new_ticket_id
from models.db import Database
from models.tables import Ticket, TicketEventRow
from models.ticket import Priority, ProjectionInput, TicketEvent, TicketState, TicketStatus

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def change(ticket_id: str, seq: int, to: TicketStatus, frm: TicketStatus | None, action: str) -> ProjectionInput:
    at = T0 + timedelta(minutes=seq)
    state = TicketState(
        ticket_id=ticket_id,
        ticket_type="general",
        region="east",
        priority=Priority.NORMAL,
        title="Leaking valve",
        created_by="agent-wang",
        status=to,
        assignee="eng-li" if seq > 1 else None,
        seq=seq,
        created_at=T0,
        updated_at=at,
    )
    event = TicketEvent(
        ticket_id=ticket_id, seq=seq, action=action, actor_id="eng-li", from_status=frm, to_status=to, at=at
    )
    return ProjectionInput(state=state, events=[event])


async def rows(db: Database, ticket_id: str) -> tuple[Ticket, list[TicketEventRow]]:
    async with db.session() as s:
        ticket = await s.get(Ticket, ticket_id)
        events = list(
            await s.exec(
                select(TicketEventRow).where(TicketEventRow.ticket_id == ticket_id).order_by(col(TicketEventRow.seq))
            )
        )
    assert ticket is not None
    return ticket, events


async def test_retry_writes_each_event_once(db: Database):
    tid = new_ticket_id()
    env = ActivityEnvironment()
    created = change(tid, 1, TicketStatus.NEW, None, "created")
    claimed = change(tid, 2, TicketStatus.ASSIGNED, TicketStatus.NEW, "claim")
    for c in (created, created, claimed, claimed, claimed):  # retries after a lost reply
        await env.run(record_ticket_changes, c)
    ticket, events = await rows(db, tid)
    assert [(e.seq, e.action, e.from_status, e.to_status) for e in events] == [
        (1, "created", None, "new"),
        (2, "claim", "new", "assigned"),
    ]
    assert (ticket.seq, ticket.status, ticket.assignee) == (2, "assigned", "eng-li")
    assert ticket.created_at == T0 and ticket.updated_at == T0 + timedelta(minutes=2)
    assert ticket.snapshot["status"] == "assigned"


async def test_a_late_older_change_never_moves_the_ticket_backwards(db: Database):
    tid = new_ticket_id()
    env = ActivityEnvironment()
    await env.run(record_ticket_changes, change(tid, 1, TicketStatus.NEW, None, "created"))
    await env.run(record_ticket_changes, change(tid, 3, TicketStatus.IN_PROGRESS, TicketStatus.ASSIGNED, "start"))
    await env.run(record_ticket_changes, change(tid, 2, TicketStatus.ASSIGNED, TicketStatus.NEW, "claim"))
    ticket, events = await rows(db, tid)
    assert (ticket.seq, ticket.status) == (3, "in_progress")
    assert [e.seq for e in events] == [1, 2, 3]
