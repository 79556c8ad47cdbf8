"""Shared test helpers: preset templates as versions; polling a ticket's state."""

import asyncio
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import WorkflowHandle

from models.template import TemplateSpec, TemplateVersion
from models.ticket import TicketState

PRESETS = Path(__file__).resolve().parent.parent / "templates"


@cache
def preset(key: str, version: int = 1) -> TemplateVersion:
    spec = TemplateSpec.model_validate(yaml.safe_load((PRESETS / f"{key}.yaml").read_text()))
    return TemplateVersion(key=spec.key, version=version, spec=spec)


async def until_state(
    handle: WorkflowHandle, check: Callable[[TicketState], Any], what: str, timeout: float = 20.0
) -> TicketState:
    """Poll the ticket's state (a query; a worker must be running) until ``check`` holds."""
    from workflows.ticket import TicketWorkflow  # imported late: tests that never poll skip the engine

    deadline = time.monotonic() + timeout
    while True:
        state: TicketState = await handle.query(TicketWorkflow.get_state)
        if check(state):
            return state
        if time.monotonic() > deadline:
            path = f" path {state.path}" + (f" children {state.children}" if state.children else "")
            raise AssertionError(
                f"{handle.id}: no {what} in {timeout} s (status {state.status}, active {state.active}{path})"
            )
        await asyncio.sleep(0.05)
