"""``PersonLeftWorkflow``: someone was deactivated — every open ticket holding them takes the
work back (the ``person_left`` signal of ``TicketWorkflow``).

Started by ``DELETE /people/{id}`` with the id ``person-left-<person>``, so a repeated
deactivation joins the running one instead of starting twice, and ops find it in the Temporal
UI. The tickets are found in the read model (``directory.held_tickets``); each signal is a
durable command, so a worker crash half-way resumes where it stopped. A ticket that ended
meanwhile is skipped.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from models.ticket import PersonLeft, PersonLeftInput


def workflow_id(person_id: str) -> str:
    return f"person-left-{person_id}"


@workflow.defn(name="PersonLeft")
class PersonLeftWorkflow:
    @workflow.run
    async def run(self, input: PersonLeftInput) -> list[str]:
        tickets: list[str] = await workflow.execute_activity(
            "directory.held_tickets",
            input.person_id,
            result_type=list[str],
            start_to_close_timeout=timedelta(seconds=60),
            summary=f"open tickets {input.person_id} holds",
        )
        told = []
        for ticket_id in tickets:
            handle = workflow.get_external_workflow_handle(f"ticket-{ticket_id}")
            try:
                await handle.signal("person_left", PersonLeft(person_id=input.person_id, reason=input.reason))
                told.append(ticket_id)
            except FailureError:  # the ticket's run ended meanwhile
                workflow.logger.info("ticket %s ended before %s's work was released", ticket_id, input.person_id)
        return told
