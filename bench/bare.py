"""The baseline: a bare workflow with the same human steps (Updates) and nothing else."""

from pydantic import BaseModel
from temporalio import workflow


class Step(BaseModel):
    name: str


@workflow.defn
class BareWorkflow:
    def __init__(self) -> None:
        self.done = False
        self.steps: list[str] = []

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(self.steps)

    @workflow.update
    async def step(self, step: Step) -> int:
        self.steps.append(step.name)
        self.done = step.name == "close"
        return len(self.steps)

    @step.validator
    def _validate(self, step: Step) -> None:
        if self.done:
            raise ValueError("closed")
