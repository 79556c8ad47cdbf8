"""Build "B" of tests/workflows/test_upgrade.py: today's ``TicketWorkflow`` with one change to what
a running ticket does, made the way docs/upgrading.md says a release makes it.

The change: once work starts, the ticket records a ``build_note`` event. ``PatchedTicketWorkflow``
puts it behind ``workflow.patched(PATCH)``: a ticket whose ``start`` was already taken on build A
replays that step the old way (no marker in its history) and keeps the old way for the rest of
its run (a patch is decided once per run); a ticket that reaches ``start`` on B records the
marker and the note. ``UnguardedTicketWorkflow`` is the same change without the guard: the
history of a ticket started on A does not replay against it (what the patch is for).
"""

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from models.ticket import SYSTEM, StartInput, TicketInput, TicketResult, TicketState
    from workflows.actions import ACTIONS
    from workflows.ticket import TicketWorkflow

PATCH = "test-upgrade-note-on-start"
NOTE = "build_note"
START = ACTIONS["start"]


@workflow.defn(name="TicketWorkflow", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class PatchedTicketWorkflow(TicketWorkflow):
    @workflow.run
    async def run(self, input: TicketInput) -> TicketResult:
        return await self.ticket.run(input)

    @workflow.update(name="start")
    async def start(self, input: StartInput) -> TicketState:
        state = await START.take(self.ticket, input)
        if workflow.patched(PATCH):
            state = await self.ticket.record(NOTE, SYSTEM, {"build": "B"})
        return state

    @start.validator
    def check_start(self, input: StartInput) -> None:
        START.check(self.ticket, input)


@workflow.defn(name="TicketWorkflow", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class UnguardedTicketWorkflow(TicketWorkflow):
    @workflow.run
    async def run(self, input: TicketInput) -> TicketResult:
        return await self.ticket.run(input)

    @workflow.update(name="start")
    async def start(self, input: StartInput) -> TicketState:
        await START.take(self.ticket, input)
        return await self.ticket.record(NOTE, SYSTEM, {"build": "B"})

    @start.validator
    def check_start(self, input: StartInput) -> None:
        START.check(self.ticket, input)
