"""What a ticket sets going when its work ends (issue #12): the template's follow-ups, scheduled
as Temporal Schedules by the ``schedules.follow_up`` activity (docs/schedules.md), and the
satisfaction survey, a ``SurveyWorkflow`` of its own (docs/surveys.md).

Both depend only on the template a ticket pinned at intake, so a ticket started before a template
declared them never runs these steps, and recorded histories replay unchanged. A failure here is
logged and recorded, never fails the ticket: the customer's ticket is done either way.
"""

from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from models.schedules import FollowUpInput, FollowUpScheduled
    from models.surveys import SurveyInput
    from models.surveys import workflow_id as survey_id
    from models.ticket import SYSTEM
    from workflows.protocol import Run

Moment = Literal["resolve", "close"]


async def follow_ups(wf: Run, after: Moment) -> None:
    """Schedule the template's follow-ups of this moment (idempotent by ticket and name)."""
    for f in wf.spec.follow_ups:
        if f.after != after:
            continue
        try:
            scheduled: FollowUpScheduled = await workflow.execute_activity(
                "schedules.follow_up",
                FollowUpInput(ticket_id=wf.state.ticket_id, follow_up=f, at=wf.state.closed_at or workflow.now()),
                result_type=FollowUpScheduled,
                start_to_close_timeout=timedelta(seconds=30),
                # Bounded: a Temporal that cannot take schedules never keeps the ticket from ending.
                schedule_to_close_timeout=timedelta(minutes=15),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=2), maximum_attempts=8),
                summary=f"follow-up {f.name}: a {f.ticket_type} ticket {f.delay} after {after}",
            )
        except ActivityError as exc:  # e.g. an unknown ticket type: the ticket is done regardless
            await wf.record("follow_up_failed", SYSTEM, {"name": f.name, "reason": str(exc.cause or exc)})
            continue
        await wf.record(
            "follow_up_scheduled",
            SYSTEM,
            {"name": f.name, "schedule": scheduled.schedule_id, "due_at": scheduled.due_at.isoformat()},
        )


async def survey(wf: Run) -> None:
    """Start the ticket's satisfaction survey: a workflow of its own (``survey-<ticket>``) that
    outlives the ticket; one per ticket (resolved again after a reopen: the first one stands)."""
    spec, s = wf.spec.survey, wf.state
    assert spec is not None
    worked = [n for n in s.nodes.values() if n.type == "task" and n.completed_at is not None and n.assignee]
    engineer = max(worked, key=lambda n: n.completed_at or workflow.now()).assignee if worked else s.assignee
    ticket = {"ticket_id": s.ticket_id, "region": s.region, "ticket_type": s.ticket_type, "title": s.title}
    try:
        await workflow.start_child_workflow(
            "Survey",
            SurveyInput.of(spec, **ticket, customer_id=s.customer_id, assignee=engineer, channel=s.channel),
            id=survey_id(s.ticket_id),
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Satisfaction survey of {s.ticket_id}",
        )
    except WorkflowAlreadyStartedError:
        return
    await wf.record("survey_sent", SYSTEM, {"survey": survey_id(s.ticket_id)})


async def on_resolved(wf: Run) -> None:
    """The walk reached its end (the ticket is resolved)."""
    if wf.spec.follow_ups:
        await follow_ups(wf, "resolve")
    if wf.spec.survey is not None and wf.spec.survey.after == "resolved":
        await survey(wf)


async def on_closed(wf: Run) -> None:
    """The ticket closed (final)."""
    if wf.spec.follow_ups:
        await follow_ups(wf, "close")
    if wf.spec.survey is not None and wf.spec.survey.after == "closed":
        await survey(wf)
