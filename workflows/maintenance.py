"""``MaintenanceWorkflow`` (type ``ScheduledTicket``): what a Temporal Schedule starts at each
firing — a maintenance plan's every N days, a follow-up's one call back — and all it does is
open the ticket through ``intake.open_ticket``.

The ticket's business key is ``schedule:<schedule id>:<scheduled time>``, the scheduled time
read from the ``TemporalScheduledStartTime`` search attribute the schedule sets: a firing
delivered twice (a backfill over the same times, a retried start, a replayed task) opens ONE
ticket. Started by hand (no such attribute), the workflow id stands in for the time. A
follow-up passes its own fixed key (one ticket per ticket and follow-up, whatever fires).
"""

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from models.intake import OpenedTicket, OpenTicket
    from models.schedules import ScheduledTicket

# Set by the server on every workflow a schedule starts: the firing's nominal time.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
OPEN_TIMEOUT = timedelta(seconds=60)
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5))  # until the run's timeout, if the database is down


def firing_key(schedule_id: str, scheduled_at: datetime | None, workflow_id: str) -> str:
    """The business key of one firing: the same schedule and scheduled time, the same ticket."""
    if scheduled_at is None:
        return f"schedule:{schedule_id}:{workflow_id}"
    return f"schedule:{schedule_id}:{scheduled_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


@workflow.defn(name="ScheduledTicket")
class MaintenanceWorkflow:
    @workflow.run
    async def run(self, input: ScheduledTicket) -> OpenedTicket:
        info = workflow.info()
        scheduled_at = info.typed_search_attributes.get(SCHEDULED_START)
        key = input.key or firing_key(input.schedule_id, scheduled_at, info.workflow_id)
        when = scheduled_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if scheduled_at else "by hand"
        opened: OpenedTicket = await workflow.execute_activity(
            "intake.open_ticket",
            OpenTicket(
                key=key,
                ticket_type=input.ticket_type,
                region=input.region,
                title=input.title,
                description=input.description,
                priority=input.priority,
                created_by=input.created_by,
                fields=input.fields,
                customer_id=input.customer_id,
                asset_id=input.asset_id,
                external_ref=input.external_ref,
            ),
            result_type=OpenedTicket,
            start_to_close_timeout=OPEN_TIMEOUT,
            retry_policy=RETRY,
            summary=f"open a {input.ticket_type} ticket for {input.schedule_id} ({when})",
        )
        return opened
