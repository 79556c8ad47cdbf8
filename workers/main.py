"""The ticket worker: workflows + activities on one task queue, with graceful shutdown.

SIGINT/SIGTERM stop polling for new tasks; in-flight activities get
``TICKETFLOW_WORKER_SHUTDOWN_GRACE_S`` seconds to finish before they are cancelled.
"""

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

import store.customer_messages
from activities import children, customer_messages, notify, resources, webhooks
from activities.registry import ACTIVITIES
from api.services import tracking
from domain import signing
from models.db import Database
from models.settings import Settings, get_settings
from workers import telemetry, versioning
from workers.client import connect
from workers.logs import configure_logging

log = structlog.get_logger(__name__)


def build_worker(client: Client, settings: Settings, task_queue: str | None = None) -> Worker:
    signing.install_keys(settings.signing_keys()[1])  # the ticket workflow checks actions with them
    children.configure(settings)  # a parent's cancel reaches its children signed with the same key
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        **versioning.worker_options(settings),  # the workflows, and the deployment when versioned
        activities=ACTIVITIES,
        interceptors=[telemetry.LogContext()],  # ticket and workflow ids on activities' log lines
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_s),
    )


async def run_worker(settings: Settings) -> None:
    db = Database(settings.database_url, settings.db_statement_timeout_ms)
    resources.use_database(db)
    notify.configure(settings)
    # Customer messages carry a tracking link when the service knows the address customers reach
    # it at (a worker has no request to take it from).
    if settings.public_base_url:
        links = customer_messages.tracking_links(tracking.link_for, settings.public_base_url)
        store.customer_messages.configure(tracking_link=links)
    if settings.metrics_port is not None:  # business counters and process metrics (docs/operations.md)
        telemetry.start_metrics_server(settings.metrics_host, settings.metrics_port)
    tracer = telemetry.configure_tracing(settings, "ticketflow-worker")
    client = await connect(
        settings.temporal_address,
        settings.temporal_namespace,
        settings.temporal_connect_timeout_s,
        interceptors=telemetry.temporal_interceptors(tracer),
        runtime=telemetry.temporal_runtime(settings),  # the SDK's metrics on TICKETFLOW_TEMPORAL_METRICS_PORT
    )
    worker = build_worker(client, settings)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    log.info(
        "worker.started",
        task_queue=settings.task_queue,
        temporal=settings.temporal_address,
        metrics_port=settings.metrics_port,
        temporal_metrics_port=settings.temporal_metrics_port,
        tracing=settings.tracing,
    )
    run = asyncio.create_task(worker.run())
    await versioning.on_start(client, settings)  # development only: make this build current
    messages = asyncio.create_task(customer_messages.run(db, settings, stop))  # the customer outbox
    hooks = asyncio.create_task(webhooks.run(db, settings, stop))  # subscribers' webhooks
    notices = asyncio.create_task(notify.run(db, settings, stop))  # staff notifications: email, SMS, IM
    await asyncio.wait([run, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    if not run.done():
        log.info("worker.stopping", grace_s=settings.worker_shutdown_grace_s)
        await worker.shutdown()
    await run
    stop.set()
    await messages
    await hooks
    await notices
    await db.dispose()
    if tracer is not None:
        tracer.shutdown()  # the last spans go out
    log.info("worker.stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    telemetry.install_log_context()
    asyncio.run(run_worker(settings))
    # The worker has shut down cleanly. Leave without interpreter finalisation: the Temporal
    # core's native threads can abort it ("PyGILState_Release … finalizing", exit -6).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
