"""The CLI's tests: commands run in-process through Typer's runner; those that go through the
API reach the real app on a real socket (``served``: the stack's app under uvicorn), the command
in a thread so the server keeps the event loop."""

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.app import app
from models import demo
from tests.client.test_client import served  # noqa: F401  (the fixture: the stack's app on a socket)

Run = Callable[..., Coroutine[Any, Any, Result]]


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """``ticketflow ARGS`` in this process; TICKETFLOW_API_URL/KEY come only from ``env``."""
    clean = {k: None for k in os.environ if k in ("TICKETFLOW_API_URL", "TICKETFLOW_API_KEY")}
    return CliRunner().invoke(app, list(args), env={**clean, **(env or {})}, input=stdin)


@pytest.fixture
def cli(served: str) -> Run:  # noqa: F811
    """``await cli(actor, *args)``: the command as ``actor`` (their demo key) against the served API."""

    async def run(actor: str | None, *args: str) -> Result:
        env = {"TICKETFLOW_API_URL": served}
        if actor is not None:
            env["TICKETFLOW_API_KEY"] = demo.demo_api_key(actor)
        return await asyncio.to_thread(invoke, *args, env=env)

    return run
