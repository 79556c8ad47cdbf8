"""``ticketflow versioning …``: the arguments go to ``python -m workers.versioning`` on the
service's Temporal (TICKETFLOW_TEMPORAL_ADDRESS)."""

import asyncio
from collections.abc import Iterator

import pytest

from models.settings import get_settings
from tests.cli.conftest import invoke


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """The settings read again from the command's environment (a process reads them once)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_versioning_commands_reach_temporal(devserver, fresh_settings):
    env = {"TICKETFLOW_TEMPORAL_ADDRESS": devserver.client.service_client.config.target_host}
    result = await asyncio.to_thread(invoke, "versioning", "--deployment-name", "cli-none", "describe", env=env)
    assert result.exit_code == 1, result.output
    assert "no deployment 'cli-none' (no versioned worker of it has polled)" in result.output
    wrong = await asyncio.to_thread(invoke, "versioning", "no-such-command", env=env)
    assert wrong.exit_code == 2 and "invalid choice: 'no-such-command'" in wrong.output


def test_versioning_help_needs_no_temporal(fresh_settings):
    result = invoke("versioning", "--help", env={"TICKETFLOW_TEMPORAL_ADDRESS": "127.0.0.1:9"})
    assert result.exit_code == 0 and "set-current" in result.stdout and "predating" in result.stdout
