"""Projection: write a ticket's state changes to the read model (ticket + ticket_event rows).

The workflow sends every change not yet recorded in one call (several changes share one
transaction). Idempotent by (ticket_id, seq): a retry inserts nothing twice, and the ticket
row only ever moves forward (``WHERE ticket.seq < excluded.seq``), so late or repeated
writes cannot reorder it.
"""

from typing import Any

from temporalio import activity

from activities.resources import database
from models.db import upsert_statement
from models.tables import Ticket, TicketEventRow
from models.ticket import ProjectionInput, TicketState


def ticket_row(state: TicketState) -> dict[str, Any]:
    """The ticket table's columns for a state (the API's intake row uses it too)."""
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
        "created_by": state.created_by,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "closed_at": state.closed_at,
        "sla_breached": state.sla.breached,
        "escalation": state.sla.escalation,
        "seq": state.seq,
        "snapshot": state.model_dump(mode="json"),
    }


@activity.defn(name="projection.record_ticket_changes")
async def record_ticket_changes(change: ProjectionInput) -> None:
    state = change.state
    db = database()
    dialect = db.engine.dialect.name
    row = ticket_row(state)
    ticket = Ticket.__table__
    upsert = upsert_statement(dialect, ticket).values(**row)
    mutable = {k: upsert.excluded[k] for k in row if k not in ("id", "created_at", "created_by")}
    upsert = upsert.on_conflict_do_update(
        index_elements=[ticket.c.id], set_=mutable, where=ticket.c.seq < upsert.excluded.seq
    )
    append = (
        upsert_statement(dialect, TicketEventRow.__table__)
        .values(
            [
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
                for event in change.events
            ]
        )
        .on_conflict_do_nothing(index_elements=["ticket_id", "seq"])
    )
    async with db.engine.begin() as conn:  # one transaction
        await conn.execute(upsert)  # ticket row first: the event row references it
        await conn.execute(append)


ACTIVITIES = [record_ticket_changes]
