"""The workflow types as a versioned worker registers them (``TICKETFLOW_WORKER_VERSIONING=true``):
each under its own name, with the Worker Versioning behaviour its lifetime calls for
(docs/upgrading.md explains each choice).

- ``TicketWorkflow`` and ``Survey``: **auto-upgrade**. A ticket lives for weeks (a survey up to 90
  days): pinned, every build would keep workers running until its last ticket closed. They move
  to the current build at their next task instead, so a change to what they do goes behind
  ``workflow.patched`` (the replay corpus proves it keeps running tickets replaying).
- ``PersonLeft`` and ``ScheduledTicket``: **pinned**. They last seconds to minutes (a day at most:
  the schedule's run timeout), so each finishes on the build it started on and an old build
  drains quickly.

Why not on the classes themselves: the server refuses a workflow task completed with a
versioning behaviour by a worker that is not versioned ("versioning behavior cannot be specified
without deployment options being set with versioned mode", Temporal 1.32, temporalio 1.35 sends
the class's behaviour whatever the worker), and workers are unversioned by default (``make run``,
the tests, the time-skipping server). So the plain classes of ``workflows.registry.WORKFLOWS``
declare none, and these subclasses — the same code, the same names — declare it for the workers
that are versioned (``workers.versioning.workflows``). A new workflow type gets its variant here
too: a versioned worker refuses a type without a behaviour (no worker default is set).
"""

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from models.intake import OpenedTicket
    from models.schedules import ScheduledTicket
    from models.surveys import SurveyInput, SurveyState
    from models.ticket import PersonLeftInput, TicketInput, TicketResult
    from workflows.maintenance import MaintenanceWorkflow
    from workflows.person_left import PersonLeftWorkflow
    from workflows.survey import SurveyWorkflow
    from workflows.ticket import TicketWorkflow

AUTO_UPGRADE = VersioningBehavior.AUTO_UPGRADE
PINNED = VersioningBehavior.PINNED


@workflow.defn(name="TicketWorkflow", versioning_behavior=AUTO_UPGRADE)
class VersionedTicketWorkflow(TicketWorkflow):
    @workflow.run
    async def run(self, input: TicketInput) -> TicketResult:
        return await super().run(input)


@workflow.defn(name="Survey", versioning_behavior=AUTO_UPGRADE)
class VersionedSurveyWorkflow(SurveyWorkflow):
    @workflow.run
    async def run(self, input: SurveyInput) -> SurveyState:
        return await super().run(input)


@workflow.defn(name="PersonLeft", versioning_behavior=PINNED)
class VersionedPersonLeftWorkflow(PersonLeftWorkflow):
    @workflow.run
    async def run(self, input: PersonLeftInput) -> list[str]:
        return await super().run(input)


@workflow.defn(name="ScheduledTicket", versioning_behavior=PINNED)
class VersionedMaintenanceWorkflow(MaintenanceWorkflow):
    @workflow.run
    async def run(self, input: ScheduledTicket) -> OpenedTicket:
        return await super().run(input)


# Each plain class → the variant a versioned worker registers instead.
VERSIONED: dict[type, type] = {
    TicketWorkflow: VersionedTicketWorkflow,
    SurveyWorkflow: VersionedSurveyWorkflow,
    PersonLeftWorkflow: VersionedPersonLeftWorkflow,
    MaintenanceWorkflow: VersionedMaintenanceWorkflow,
}
