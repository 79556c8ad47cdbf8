"""An action that meets a ticket handing over to its next run is sent again (api/services/tickets.py)."""

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.services.tickets import MOVING_RETRIES, _execute
from models.settings import Settings
from models.ticket import ActorRef, CommentInput
from workflows.ticket import INVALID_TRANSITION, MOVING

pytestmark = pytest.mark.asyncio
INPUT = CommentInput(actor=ActorRef(id="eng-li", roles=["engineer"], regions=["east"]), text="x")


class Handle:
    """Fails with the given error types, in order, then answers ``"done"``."""

    def __init__(self, *failures: str) -> None:
        self.failures, self.calls = list(failures), 0

    async def execute_update(self, update, arg, rpc_timeout=None):
        self.calls += 1
        if self.failures:
            raise WorkflowUpdateFailedError(ApplicationError("no", type=self.failures.pop(0)))
        return "done"


async def test_moving_is_retried_until_the_next_run_answers():
    handle = Handle(MOVING, MOVING)
    assert await _execute(handle, "comment", INPUT, Settings()) == "done"
    assert handle.calls == 3


async def test_other_refusals_are_not_retried_and_moving_gives_up_in_the_end():
    handle = Handle(INVALID_TRANSITION)
    with pytest.raises(WorkflowUpdateFailedError):
        await _execute(handle, "comment", INPUT, Settings())
    assert handle.calls == 1
    handle = Handle(*[MOVING] * (MOVING_RETRIES + 1))
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await _execute(handle, "comment", INPUT, Settings())
    assert err.value.cause.type == MOVING and handle.calls == MOVING_RETRIES + 1
