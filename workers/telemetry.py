"""Metrics, traces and log context for the worker and the API (docs/operations.md).

- ``start_metrics_server``: the worker's ``/metrics`` (``models.metrics.WORKER``: business counters
  and process metrics) on ``TICKETFLOW_METRICS_HOST:TICKETFLOW_METRICS_PORT``.
- ``temporal_runtime``: a Temporal ``Runtime`` whose core serves the SDK's own metrics
  (``temporal_*``: workflow and activity task latencies, failures, slots, polls) on
  ``TICKETFLOW_TEMPORAL_METRICS_PORT``; the client is connected with it.
- ``configure_tracing`` / ``temporal_interceptors``: with ``TICKETFLOW_TRACING`` on, a tracer
  provider (OTLP over HTTP, or the console) and Temporal's ``TracingInterceptor`` on the client
  (the worker takes it from its client), so one trace follows an HTTP action into the Update, the
  workflow and its activities. Off by default: nothing is installed, nothing costs.
- ``LogContext``: a worker interceptor binding ``ticket_id``, ``workflow_id`` and the activity to
  every log line written while an activity runs (structlog's context variables; stdlib
  ``logging`` lines get them appended by ``install_log_context``).
"""

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from prometheus_client import start_http_server
from temporalio import activity, client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from models import metrics
from models.settings import Settings

log = structlog.get_logger(__name__)

TICKET_PREFIX = "ticket-"
# What a log line inside an activity carries (structlog context variables).
LOG_KEYS = ("ticket_id", "workflow_id", "activity", "attempt")

# --- metrics ---


def start_metrics_server(host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve the worker's registry at ``http://host:port/metrics`` (a daemon thread); port 0
    picks a free one (``server.server_port``)."""
    return start_http_server(port, addr=host, registry=metrics.WORKER)


_runtimes: dict[str, Runtime] = {}


def temporal_runtime(settings: Settings) -> Runtime | None:
    """The Temporal runtime serving the SDK's metrics on ``temporal_metrics_port``; None when
    unset (the default runtime, no metrics endpoint). One per address and process: the core
    binds the port once."""
    if settings.temporal_metrics_port is None:
        return None
    address = f"{settings.metrics_host}:{settings.temporal_metrics_port}"
    if address not in _runtimes:
        prometheus = PrometheusConfig(bind_address=address, durations_as_seconds=True)
        _runtimes[address] = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    return _runtimes[address]


# --- traces ---

_provider: TracerProvider | None = None


def configure_tracing(settings: Settings, service_name: str) -> TracerProvider | None:
    """The global tracer provider for ``TICKETFLOW_TRACING`` (None when off). OTLP's endpoint,
    headers and the sampler come from the standard ``OTEL_*`` variables; ``OTEL_SERVICE_NAME``
    overrides ``service_name``."""
    global _provider
    if settings.tracing == "off":
        return None
    if _provider is not None:  # one per process (OpenTelemetry's global is set once)
        return _provider
    exporter: SpanExporter
    if settings.tracing == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing.on", exporter=settings.tracing, service=name)
    return provider


def temporal_interceptors(provider: TracerProvider | None) -> list[client.Interceptor]:
    """The client interceptors tracing needs (a worker built on the client takes them too)."""
    if provider is None:
        return []
    return [TracingInterceptor(tracer=provider.get_tracer("ticketflow.temporal"))]


# --- logs ---


class LogContext(Interceptor):
    """Binds the ticket and workflow ids of the activity being run to its log lines."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id or ""
        bound: dict[str, Any] = {"workflow_id": workflow_id, "activity": info.activity_type, "attempt": info.attempt}
        if workflow_id.startswith(TICKET_PREFIX):
            bound["ticket_id"] = workflow_id.removeprefix(TICKET_PREFIX)
        # An async activity runs in its own task: what is bound here is that task's only.
        tokens = structlog.contextvars.bind_contextvars(**bound)
        try:
            return await self.next.execute_activity(input)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


class _ContextFilter(logging.Filter):
    """Appends the bound ids to stdlib log lines written inside an activity (Temporal's own
    ``activity.logger`` lines already name the workflow, and are left alone)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "temporal_activity") or getattr(record, "_ticketflow_context", False):
            return True
        bound = structlog.contextvars.get_contextvars()
        found = [f"{k}={bound[k]}" for k in LOG_KEYS[:2] if k in bound]
        if found:
            record.msg = f"{record.getMessage()} [{' '.join(found)}]"
            record.args = None
            record._ticketflow_context = True
        return True


def install_log_context(handlers: Sequence[logging.Handler] | None = None) -> None:
    """Add the ids filter to ``handlers`` (default: the root logger's) once."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, _ContextFilter) for f in handler.filters):
            handler.addFilter(_ContextFilter())
