"""How api/, workers/, bench/ and tests reach Temporal: always with the Pydantic converter (outside
workflows/: this is I/O with retries and wall-clock time, never workflow code)."""

import asyncio
import time
from collections.abc import Sequence

import structlog
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

log = structlog.get_logger(__name__)


async def connect(
    address: str,
    namespace: str = "default",
    wait_s: float = 0.0,
    *,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect, retrying for up to ``wait_s`` seconds (the server may still be starting).

    ``interceptors``: e.g. tracing (``workers.telemetry.temporal_interceptors``; a worker built
    on the client takes them too); ``runtime``: one serving the SDK's metrics
    (``workers.telemetry.temporal_runtime``), else the default runtime."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            return await Client.connect(
                address,
                namespace=namespace,
                data_converter=pydantic_data_converter,
                interceptors=interceptors,
                runtime=runtime,
            )
        except RuntimeError as exc:  # the core SDK raises RuntimeError on connection failure
            if time.monotonic() >= deadline:
                raise
            log.info("temporal.waiting", address=address, error=str(exc).splitlines()[0])
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
