"""Every Prometheus metric Ticketflow defines, in one place (docs/operations.md lists them).

Two registries, one per kind of process, so a scrape shows only what that process counts:

- ``API``: served by the API at ``/metrics`` (``api/middleware.py``): HTTP requests by route
  template (never the raw path: ids would explode the series), action and outcome.
- ``WORKER``: served by the worker on ``TICKETFLOW_METRICS_PORT`` (``workers/telemetry.py``):
  business events counted by the activities that write them. The Temporal SDK's own metrics
  (``temporal_*``) come from its runtime on ``TICKETFLOW_TEMPORAL_METRICS_PORT``.

Labels hold only bounded values (ticket types and regions come from templates and reference
data, channels and statuses from enums): never an id, a name or free text.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, gc_collector, platform_collector, process_collector

API = CollectorRegistry(auto_describe=True)
WORKER = CollectorRegistry(auto_describe=True)
for _registry in (API, WORKER):  # CPU, memory, open files, GC of the process
    process_collector.ProcessCollector(registry=_registry)
    platform_collector.PlatformCollector(registry=_registry)
    gc_collector.GCCollector(registry=_registry)

# --- API ---

HTTP_REQUESTS = Counter(
    "ticketflow_http_requests",
    "HTTP requests answered, by method, route template, ticket action (POST /tickets/{id}/actions/<action>; "
    "empty otherwise) and outcome (status class: 2xx, 3xx, 4xx, 5xx)",
    ["method", "route", "action", "outcome"],
    registry=API,
)
HTTP_LATENCY = Histogram(
    "ticketflow_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method, route template and action",
    ["method", "route", "action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=API,
)

# --- worker: business events ---

TICKETS_CREATED = Counter(
    "ticketflow_tickets_created",
    "Tickets opened (their 'created' event reached the read model), by ticket type and region",
    ["ticket_type", "region"],
    registry=WORKER,
)
TICKETS_CLOSED = Counter(
    "ticketflow_tickets_closed",
    "Tickets ended, by ticket type, region and final status (closed or cancelled)",
    ["ticket_type", "region", "status"],
    registry=WORKER,
)
SLA_BREACHES = Counter(
    "ticketflow_sla_breaches",
    "SLA targets missed (sla_breach events), by ticket type, region and clock (response, resolution, <node>.<kind>)",
    ["ticket_type", "region", "sla"],
    registry=WORKER,
)
ESCALATIONS = Counter(
    "ticketflow_sla_escalations",
    "SLA escalations past a breach (sla_escalation events), by ticket type, region and level escalated to",
    ["ticket_type", "region", "level"],
    registry=WORKER,
)
DISPATCH_LATENCY = Histogram(
    "ticketflow_dispatch_decision_seconds",
    "Time the dispatch.decide activity takes to choose (roster, loads, scoring), by strategy and outcome",
    ["strategy", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=WORKER,
)
NOTIFICATIONS_SENT = Counter(
    "ticketflow_notifications_sent",
    "Staff notifications delivered, by channel (inbox, email, sms, im…)",
    ["channel"],
    registry=WORKER,
)
NOTIFICATIONS_FAILED = Counter(
    "ticketflow_notifications_failed",
    "Failed notification attempts, by channel; final=true when the notification was given up",
    ["channel", "final"],
    registry=WORKER,
)
STOCK_RESERVATIONS = Counter(
    "ticketflow_stock_reservations",
    "Spare-part reservations made for tickets, by region and result (reserved, partial, insufficient)",
    ["region", "status"],
    registry=WORKER,
)
