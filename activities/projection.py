"""Projection: write a ticket's state changes to the read model (ticket + ticket_event rows).

The workflow sends every change not yet recorded in one call (several changes share one
transaction). Idempotent by (ticket_id, seq): a retry inserts nothing twice, and the ticket
row only ever moves forward, so late or repeated writes cannot reorder it
(``store.tickets.record_changes``).
"""

from temporalio import activity

from activities.resources import database
from models.ticket import ProjectionInput
from store import tickets


@activity.defn(name="projection.record_ticket_changes")
async def record_ticket_changes(change: ProjectionInput) -> None:
    await tickets.record_changes(database(), change.state, change.events)
