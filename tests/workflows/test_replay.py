"""Every recorded history under tests/histories/ must replay against today's workflow code."""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.registry import WORKFLOWS

HISTORIES = sorted((Path(__file__).parents[1] / "histories").glob("*.json"))


def test_there_are_histories_to_replay():
    assert HISTORIES, "record some with: python -m tests.histories.record"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(f"ticket-{path.stem}", path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


RACES = sorted((Path(__file__).parents[1] / "histories" / "races").glob("*.json"))


@pytest.mark.xfail(
    reason="known replay race (README, Not yet built): two SLA milestones firing together, one a "
    "breach — the projection's local activity and the other timer replay in another order"
)
@pytest.mark.parametrize("path", RACES, ids=lambda p: p.stem)
async def test_known_race_replays(path: Path):
    """A history recorded by this release (before the engine split) that does not replay: kept so
    the race can be reproduced (``Activity machine does not handle UpsertWorkflowSearchAttributes``)
    and its fix proven."""
    history = WorkflowHistory.from_json(f"ticket-{path.stem}", path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
