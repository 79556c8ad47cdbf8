"""Issue #15 part 3: one trace follows an HTTP action into the workflow and its activities.

The real app (FastAPI instrumentation) and an in-process worker on the dev server, both on a
client with Temporal's ``TracingInterceptor``, export spans to memory. The ticket's creation is
one trace: ``POST /tickets`` → ``StartWorkflow`` → ``RunWorkflow`` → ``StartActivity`` →
``RunActivity:projection.record_ticket_changes``. A later action's request is its own trace,
reached from the ticket's trace by a link on ``HandleUpdate:<action>`` (Temporal's interceptor
keeps a workflow's spans in the trace that started it), and its projection runs in that trace.

And the logs: a line written inside an activity carries the ticket and workflow ids.
"""

import logging
import uuid
from datetime import timedelta

import httpx
import structlog
import structlog.testing
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from models.db import Database
from tests.conftest import Stack, settings_for, task_queue
from workers import telemetry
from workers.main import build_worker

PROJECTION = "RunActivity:projection.record_ticket_changes"


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_the_http_action_to_an_activity(
    db: Database, database_url: str, devserver: WorkflowEnvironment
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The API's signing client with tracing, as `connect` gives it when TICKETFLOW_TRACING is on;
    # the worker built on it takes the interceptor too.
    config = devserver.client.config()
    config["interceptors"] = [*config["interceptors"], *telemetry.temporal_interceptors(provider)]
    client = Client(**config)
    settings = settings_for(database_url, devserver, task_queue())
    worker = build_worker(client, settings)
    app = create_app(settings, client=client, tracer_provider=provider)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
            stack = Stack(http=http, settings=settings, client=client, worker=worker)
            r = await stack.create(region="east", ticket_type="general")
            assert r.status_code == 201, r.text
            tid = r.json()["ticket_id"]
            await stack.until(tid, lambda t: t["active"])
            r = await stack.act(tid, "claim", "eng-li")
            assert r.status_code == 200, r.text
            assert (await http.get("/health")).status_code == 200  # probes make no spans
            assert (await http.get("/metrics")).status_code == 200
    provider.force_flush()
    spans = list(exporter.get_finished_spans())
    workflow_id = f"ticket-{tid}"

    # The creation: the HTTP server span, and under the same trace id the workflow's start, its
    # run and the projection activity the worker ran.
    [create] = [
        s
        for s in spans
        if s.kind is SpanKind.SERVER
        and s.attributes.get("http.route") == "/tickets"
        and s.attributes.get("http.request.method", s.attributes.get("http.method")) == "POST"
    ]
    trace_id = create.context.trace_id
    in_trace = [s for s in spans if s.context.trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert {"StartWorkflow:TicketWorkflow", "RunWorkflow:TicketWorkflow", PROJECTION} <= names, sorted(names)
    projections = named(in_trace, PROJECTION)
    assert all(s.attributes.get("temporalWorkflowID") == workflow_id for s in projections)
    assert any(s.name.startswith("StartActivity:projection") for s in in_trace)

    # The action: its HTTP span and the Update it sent share a trace; the workflow's handling of
    # it links back to that trace, and the claim's projection ran after it in the ticket's trace.
    route = "/tickets/{ticket_id}/actions/claim"
    [claim] = [s for s in spans if s.kind is SpanKind.SERVER and s.attributes.get("http.route") == route]
    action_trace = claim.context.trace_id
    assert action_trace != trace_id
    assert any(s.name == "StartWorkflowUpdate:claim" and s.context.trace_id == action_trace for s in spans)
    [handled] = named(spans, "HandleUpdate:claim")
    assert handled.context.trace_id == trace_id
    assert {link.context.trace_id for link in handled.links} == {action_trace}
    assert len(projections) >= 2  # created with the task opened (one batch), the claim…
    assert max(s.start_time for s in projections) > handled.start_time
    assert tid not in (claim.attributes.get("http.route") or "")
    http_spans = [
        s for s in spans if s.kind is SpanKind.SERVER and not s.name.startswith(("Run", "Handle", "Validate"))
    ]
    assert {s.name for s in http_spans} == {"POST /tickets", "GET /tickets/{ticket_id}", f"POST {route}"}


# --- logs carry the ticket and workflow ids ---

LOGGER = "tests.ops.activity_logs"


@activity.defn(name="tests.log_lines")
async def log_lines() -> None:
    logging.getLogger(LOGGER).warning("reserved %d parts", 2)  # as activities/dispatch.py, notify.py log
    structlog.get_logger(LOGGER).warning("stock.reserved", parts=2)


@workflow.defn(name="TestsLogLines", sandboxed=False)
class LogLines:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(log_lines, start_to_close_timeout=timedelta(seconds=20))


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_activity_log_lines_carry_the_ticket_and_workflow_ids(
    database_url: str, devserver: WorkflowEnvironment
) -> None:
    settings = settings_for(database_url, devserver, task_queue())
    assert any(
        isinstance(i, telemetry.LogContext) for i in build_worker(devserver.client, settings).config()["interceptors"]
    )
    handler = Lines()
    telemetry.install_log_context([handler])
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    queue = task_queue()
    tid = "TLOGS" + uuid.uuid4().hex[:8].upper()
    try:
        with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            async with Worker(
                devserver.client,
                task_queue=queue,
                workflows=[LogLines],
                activities=[log_lines],
                interceptors=[telemetry.LogContext()],
            ):
                await devserver.client.execute_workflow(LogLines.run, id=f"ticket-{tid}", task_queue=queue)
            logging.getLogger(LOGGER).warning("outside any activity")
    finally:
        logger.removeHandler(handler)
    assert handler.lines[0] == f"reserved 2 parts [ticket_id={tid} workflow_id=ticket-{tid}]"
    assert handler.lines[1] == "outside any activity"  # nothing bound out of an activity
    [line] = [e for e in logs if e["event"] == "stock.reserved"]
    assert (line["ticket_id"], line["workflow_id"], line["activity"], line["attempt"]) == (
        tid,
        f"ticket-{tid}",
        "tests.log_lines",
        1,
    )
