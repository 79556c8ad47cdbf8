"""An action that meets a ticket handing over to its next run is sent again (api/services/tickets.py)."""

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.errors import ActionTimedOut
from api.services.tickets import MOVING_RETRIES, _send
from models.ticket import ActorRef, CommentInput
from workflows.ticket import INVALID_TRANSITION, MOVING

pytestmark = pytest.mark.asyncio
INPUT = CommentInput(actor=ActorRef(id="eng-li", roles=["engineer"], regions=["east"]), text="x")


class Handle:
    """Each update is accepted, then fails with the given error types, in order, then answers
    ``"done"``; ``hang`` never accepts it (no worker)."""

    def __init__(self, *failures: str, hang: bool = False) -> None:
        self.failures, self.calls, self.hang = list(failures), 0, hang

    async def start_update(self, update, arg, id, wait_for_stage, result_type=None):
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        return self

    async def result(self):
        if self.failures:
            raise WorkflowUpdateFailedError(ApplicationError("no", type=self.failures.pop(0)))
        return "done"


async def test_moving_is_retried_until_the_next_run_answers():
    handle = Handle(MOVING, MOVING)
    assert await _send(handle, "comment", INPUT, "u", 5) == "done"
    assert handle.calls == 3


async def test_other_refusals_are_not_retried_and_moving_gives_up_in_the_end():
    handle = Handle(INVALID_TRANSITION)
    with pytest.raises(WorkflowUpdateFailedError):
        await _send(handle, "comment", INPUT, "u", 5)
    assert handle.calls == 1
    handle = Handle(*[MOVING] * (MOVING_RETRIES + 1))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await _send(handle, "comment", INPUT, "u", 5)
    assert err.value.cause.type == MOVING and handle.calls == MOVING_RETRIES + 1


async def test_an_update_no_worker_takes_is_a_504_that_says_it_will_not_apply():
    with pytest.raises(ActionTimedOut) as err:
        await _send(Handle(hang=True), "comment", INPUT, "u", 0.2)
    assert err.value.extra == {"applied": False}
