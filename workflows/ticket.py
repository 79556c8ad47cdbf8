"""TicketWorkflow: one long-running workflow per ticket (id ``ticket-<ticket_id>``).

Only the Temporal surface lives here: the run, the query, two signals, and one Update per row
of the action table (``workflows/actions.py``), each with its validator — a refused action
leaves no history and the caller learns why at once. The ticket's engine is ``TicketRun``
(``workflows/run.py``): it walks the graph of the template version the ticket started with
(carried in its input, so editing the template never changes a running ticket).
"""

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.lifecycle import TERMINAL, RefusalType
    from models.ticket import PersonLeft, TicketInput, TicketResult, TicketSignal, TicketState
    from workflows.actions import ACTIONS, ActionDef
    from workflows.run import SIGNED_EVENTS, TicketRun

# The refusal types under their former names (tests and scripts import them from here).
INVALID_TRANSITION = RefusalType.INVALID_TRANSITION.value
MOVING = RefusalType.MOVING.value
UNSIGNED = RefusalType.UNSIGNED.value
EXPIRED = RefusalType.EXPIRED.value
KEY_REUSED = RefusalType.KEY_REUSED.value


def workflow_id(ticket_id: str) -> str:
    return f"ticket-{ticket_id}"


class TicketWorkflow:
    @workflow.init
    def __init__(self, input: TicketInput) -> None:
        self.ticket = TicketRun(input)

    @workflow.run
    async def run(self, input: TicketInput) -> TicketResult:
        return await self.ticket.run(input)

    @workflow.query
    def get_state(self) -> TicketState:
        return self.ticket.state

    @workflow.signal
    def event(self, signal: TicketSignal) -> None:
        """Tickets started before events were declared and signed took them as this signal; a
        run with the patch refuses it (anyone with a Temporal client could send one): events are
        the ``send_event`` update, checked against the template's declaration."""
        if workflow.patched(SIGNED_EVENTS):
            workflow.logger.warning("refused an unsigned %r event signal: send events through the API", signal.name)
            return
        if self.ticket.state.status not in TERMINAL:
            self.ticket.take_event(signal)

    @workflow.signal
    def person_left(self, input: PersonLeft) -> None:
        """A person was deactivated (sent by ``PersonLeftWorkflow``); checked against the directory
        before any work is taken back."""
        self.ticket.queue_departure(input)


def _install(cls: type, d: ActionDef) -> None:
    """One Update (with its validator) per action: ``TicketWorkflow.<name>`` is its definition,
    which clients pass to ``execute_update``."""

    async def handler(self: TicketWorkflow, input: Any) -> TicketState:
        return await d.take(self.ticket, input)

    def validator(self: TicketWorkflow, input: Any) -> None:
        d.check(self.ticket, input)

    attr = "return_" if d.name == "return" else d.name
    handler.__name__ = validator.__name__ = attr
    handler.__qualname__ = f"{cls.__name__}.{attr}"
    handler.__annotations__ = {"input": d.input, "return": TicketState}
    validator.__annotations__ = {"input": d.input, "return": None}
    update = workflow.update(name=d.name)(handler)
    update.validator(validator)
    setattr(cls, attr, update)


for _definition in ACTIONS.values():
    _install(TicketWorkflow, _definition)
TicketWorkflow = workflow.defn(TicketWorkflow)  # type: ignore[misc]
