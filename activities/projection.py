"""Projection: write a ticket's state changes to the read model (ticket + ticket_event rows).

The workflow sends every change not yet recorded in one call (several changes share one
transaction). Idempotent by (ticket_id, seq): a retry inserts nothing twice, and the ticket
row only ever moves forward, so late or repeated writes cannot reorder it
(``store.tickets.record_changes``).

Once committed, the business events among the changes are counted (``models/metrics.py``):
tickets created and ended by type and region, SLA breaches and escalations. A first attempt
counts what it wrote; a retry first reads which of its events an earlier attempt already
committed and counts only the others, so a counter moves once per event (docs/operations.md).
"""

from collections.abc import Sequence

from temporalio import activity

from activities.resources import database
from models import metrics
from models.common import TicketStatus
from models.db import Database
from models.ticket import ProjectionInput, TicketEvent, TicketState
from store import tickets

ENDED = (TicketStatus.CLOSED, TicketStatus.CANCELLED)


@activity.defn(name="projection.record_ticket_changes")
async def record_ticket_changes(change: ProjectionInput) -> None:
    db = database()
    new = change.events
    if new and activity.info().attempt > 1:  # an earlier attempt may have committed before failing
        new = await _not_recorded(db, change.events)
    await tickets.record_changes(db, change.state, change.events)
    count(change.state, new)


async def _not_recorded(db: Database, events: Sequence[TicketEvent]) -> list[TicketEvent]:
    """The events (consecutive, of one ticket) the read model does not hold yet."""
    first = min(e.seq for e in events)
    async with db.session() as session:
        there = await tickets.events_after(session, events[0].ticket_id, first - 1, len(events))
    seqs = {row.seq for row in there}
    return [e for e in events if e.seq not in seqs]


def count(state: TicketState, events: Sequence[TicketEvent]) -> None:
    """Count the business events among ``events`` (just committed) of the ticket in ``state``."""
    kind, region = state.ticket_type, state.region
    for e in events:
        if e.action == "created":
            metrics.TICKETS_CREATED.labels(kind, region).inc()
        elif e.action == "sla_breach":
            metrics.SLA_BREACHES.labels(kind, region, str(e.data.get("sla", ""))).inc()
        elif e.action == "sla_escalation":
            metrics.ESCALATIONS.labels(kind, region, str(e.data.get("escalated_to", ""))).inc()
        if e.to_status in ENDED and e.from_status != e.to_status:
            metrics.TICKETS_CLOSED.labels(kind, region, e.to_status.value).inc()
