"""Issue #15 part 3: Prometheus metrics from the API and the worker.

After a ticket's life (created, claimed, started, resolved, closed, one refused action) on the
real app and an in-process worker on the dev server, ``/metrics`` of the API and the worker's
two endpoints (business counters; the Temporal SDK's own) are scraped over HTTP and the counters
have moved. Labels carry route templates, never a ticket id. Then the edges: the metrics token,
made-up methods and paths, counting once when the projection is retried; the dispatch,
notification and stock counters at their activities; ``python -m workers`` serving both
endpoints; and the alert rules and dashboard naming only metrics the code defines.
"""

import asyncio
import dataclasses
import json
import re
import signal
import socket
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import notify
from activities.dispatch import decide_assignee, forget_rosters
from activities.inventory import reserve_parts
from activities.projection import record_ticket_changes
from api.app import create_app
from domain.ids import new_ticket_id
from models import metrics
from models.db import Database
from models.dispatch import DispatchCall, DispatchRequest
from models.notifications import NotifyInput, NotifySettings, TicketBrief, Urgency
from models.notifications_tables import NotificationOutbox
from models.settings import Settings
from models.tables import Actor
from models.ticket import Priority, ProjectionInput, TicketEvent, TicketState, TicketStatus
from tests.activities.test_inventory import PUDONG, reserve_input, ticket, world
from tests.conftest import Stack, settings_for, task_queue
from tests.e2e.helpers import child_env, spawn, stop_group, wait_http
from workers import telemetry
from workers.client import connect
from workers.main import build_worker

TOKEN = "a-metrics-token-of-32-characters-or-more"
ACTION = "/tickets/{ticket_id}/actions/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    return sum(v for n, got, v in samples(text) if n == name and labels.items() <= got.items())


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - a local test server
        assert r.status == 200
        return r.read().decode()


async def scrape_async(url: str) -> str:
    return await asyncio.to_thread(scrape, url)


async def test_a_tickets_life_moves_the_api_and_worker_metrics(
    db: Database, database_url: str, devserver: WorkflowEnvironment
) -> None:
    settings = settings_for(database_url, devserver, task_queue()).model_copy(
        update={"metrics_host": "127.0.0.1", "temporal_metrics_port": free_port()}
    )
    server, _ = telemetry.start_metrics_server("127.0.0.1", 0)  # the worker's business counters
    worker_metrics = f"http://127.0.0.1:{server.server_port}/metrics"
    sdk_metrics = f"http://127.0.0.1:{settings.temporal_metrics_port}/metrics"
    # The worker as `python -m workers` connects: with the runtime that serves the SDK's metrics.
    target = devserver.client.service_client.config.target_host
    worker_client = await connect(target, runtime=telemetry.temporal_runtime(settings))
    worker = build_worker(worker_client, settings)
    app = create_app(settings, client=devserver.client)  # the API's client signs actions
    try:
        async with worker, app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
                stack = Stack(http=http, settings=settings, client=devserver.client, worker=worker)
                api_before = (await http.get("/metrics")).text
                worker_before = await scrape_async(worker_metrics)

                r = await stack.create(region="east", ticket_type="general")
                assert r.status_code == 201, r.text
                tid = r.json()["ticket_id"]
                await stack.until(tid, lambda t: t["active"])
                refused = await stack.act(tid, "close", "agent-wang")  # not yet: 409
                assert refused.status_code == 409, refused.text
                for action, actor, body in [
                    ("claim", "eng-li", {}),
                    ("start", "eng-li", {}),
                    ("resolve", "eng-li", {"resolution": "belt re-tensioned"}),
                    ("close", "agent-wang", {}),
                ]:
                    r = await stack.act(tid, action, actor, **body)
                    assert r.status_code == 200, (action, r.text)
                assert r.json()["status"] == "closed"

                r = await http.get("/metrics")
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
                api_after = r.text
                worker_after = await scrape_async(worker_metrics)
                sdk_after = await scrape_async(sdk_metrics)
    finally:
        server.shutdown()
        server.server_close()

    def api_moved(name: str, **labels: str) -> float:
        return value(api_after, name, **labels) - value(api_before, name, **labels)

    def worker_moved(name: str, **labels: str) -> float:
        return value(worker_after, name, **labels) - value(worker_before, name, **labels)

    # The API: by route template and action, with the outcome's status class.
    requests = "ticketflow_http_requests_total"
    assert api_moved(requests, method="POST", route="/tickets", action="", outcome="2xx") == 1
    assert api_moved(requests, method="POST", route=ACTION + "claim", action="claim", outcome="2xx") == 1
    assert api_moved(requests, method="POST", route=ACTION + "close", action="close", outcome="2xx") == 1
    assert api_moved(requests, method="POST", route=ACTION + "close", action="close", outcome="4xx") == 1
    assert api_moved(requests, method="GET", route="/tickets/{ticket_id}", action="", outcome="2xx") >= 1
    latency = "ticketflow_http_request_duration_seconds_count"
    assert api_moved(latency, method="POST", route=ACTION + "resolve", action="resolve") == 1
    assert value(api_after, "ticketflow_http_request_duration_seconds_sum", route=ACTION + "resolve") > 0
    assert tid not in api_after  # route templates, never ids
    assert "process_resident_memory_bytes" in api_after

    # The worker: business events, counted once by the projection that wrote them.
    assert worker_moved("ticketflow_tickets_created_total", ticket_type="general", region="east") == 1
    closed = {"ticket_type": "general", "region": "east"}
    assert worker_moved("ticketflow_tickets_closed_total", **closed, status="closed") == 1
    assert worker_moved("ticketflow_tickets_closed_total", **closed, status="cancelled") == 0
    assert tid not in worker_after
    assert "ticketflow_http_requests" not in worker_after  # each process shows what it counts

    # The Temporal SDK's metrics from the worker's runtime, for this worker's task queue.
    queue = {"task_queue": settings.task_queue}
    assert value(sdk_after, "temporal_activity_execution_latency_count", **queue) >= 5  # projections…
    assert value(sdk_after, "temporal_workflow_task_execution_latency_count", **queue) >= 5


async def test_the_metrics_token_guards_the_api_scrape_and_labels_stay_bounded() -> None:
    app = create_app(Settings(metrics_token=TOKEN, rate_limit_per_minute=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = await http.get("/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer" and "ticketflow_" not in r.text
        assert (await http.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 405
        # Made-up paths and methods: one "unmatched" route, one "other" method, whatever was sent.
        assert (await http.get("/no-such-page/x7q9z3")).status_code == 404
        assert (await http.request("BREW", "/coffee-k5v8w2")).status_code == 404
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert "x7q9z3" not in r.text and "k5v8w2" not in r.text and "BREW" not in r.text
    assert value(r.text, "ticketflow_http_requests_total", method="other", route="unmatched", outcome="4xx") >= 1
    assert value(r.text, "ticketflow_http_requests_total", method="GET", route="/metrics", outcome="4xx") >= 3


async def test_a_retried_projection_counts_each_event_once(db: Database) -> None:
    tid = new_ticket_id()
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    state = TicketState(
        ticket_id=tid,
        ticket_type="metrics_probe",
        region="east",
        priority=Priority.NORMAL,
        title="Counted once",
        created_by="agent-wang",
        status=TicketStatus.CANCELLED,
        seq=2,
        created_at=at,
        updated_at=at,
    )
    events = [
        TicketEvent(
            ticket_id=tid, seq=1, action="created", actor_id="agent-wang", from_status=None, to_status="new", at=at
        ),
        TicketEvent(
            ticket_id=tid,
            seq=2,
            action="cancel",
            actor_id="agent-wang",
            from_status="new",
            to_status="cancelled",
            at=at,
        ),
    ]
    first, retry = ActivityEnvironment(), ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    labels = {"ticket_type": "metrics_probe", "region": "east"}

    def counts() -> tuple[float, float]:
        created = metrics.WORKER.get_sample_value("ticketflow_tickets_created_total", labels) or 0.0
        ended = metrics.WORKER.get_sample_value("ticketflow_tickets_closed_total", {**labels, "status": "cancelled"})
        return created, ended or 0.0

    before = counts()
    await first.run(record_ticket_changes, ProjectionInput(state=state, events=events[:1]))
    # The retry of a call whose first attempt committed event 1 but lost its reply before 2.
    await retry.run(record_ticket_changes, ProjectionInput(state=state, events=events))
    await retry.run(record_ticket_changes, ProjectionInput(state=state, events=events))
    after = counts()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


# --- the deploy files watch what the code counts ---

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SUFFIXES = re.compile(r"_(total|bucket|count|sum|created)$")


def defined() -> set[str]:
    return {family.name for registry in (metrics.API, metrics.WORKER) for family in registry.collect()}


def test_alert_rules_and_the_dashboard_use_only_metrics_the_code_defines() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"TicketflowSlaBreached", "TicketflowWorkflowTaskFailures"} <= {a["alert"] for a in alerts}
    for alert in alerts:
        assert alert["expr"].strip() and alert["labels"]["severity"] in ("warning", "critical"), alert
        assert alert["annotations"]["summary"], alert
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ticketflow.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {d["uid"] for d in source["datasources"]}
    used = set(re.findall(r"\bticketflow_[a-z_]+", " ".join([*exprs, *(a["expr"] for a in alerts)])))
    names = {SUFFIXES.sub("", name) for name in used}
    assert names and names <= defined(), names - defined()
    # every business counter is on the dashboard
    assert {n for n in defined() if n.startswith("ticketflow_")} <= names


def test_metrics_settings_refuse_a_weak_token_and_one_port_for_both() -> None:
    with pytest.raises(ValidationError, match="TICKETFLOW_METRICS_TOKEN"):
        Settings(metrics_token="short")
    with pytest.raises(ValidationError, match="must differ"):
        Settings(metrics_port=9464, temporal_metrics_port=9464)
    assert Settings(metrics_token="").metrics_token is None  # compose's empty default: no token
    off = Settings()
    assert (off.metrics_port, off.temporal_metrics_port, off.tracing) == (None, None, "off")


def test_python_m_workers_serves_both_metrics_endpoints(
    database_url: str, devserver: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The real entry point: the ports from the environment, served until SIGTERM."""
    ports = free_port(), free_port()
    env = child_env(
        database_url=database_url,
        temporal_address=devserver.client.service_client.config.target_host,
        task_queue=task_queue(),
        action_signing_key="k" * 40,
        metrics_host="127.0.0.1",
        metrics_port=str(ports[0]),
        temporal_metrics_port=str(ports[1]),
    )
    worker = spawn([sys.executable, "-m", "workers"], env, tmp_path / "worker.log")
    try:
        business = wait_http(f"http://127.0.0.1:{ports[0]}/metrics", timeout=60).text
        sdk = wait_http(f"http://127.0.0.1:{ports[1]}/metrics", ok=lambda r: "temporal_num_pollers" in r.text).text
    finally:
        code = stop_group(worker, signal.SIGTERM)
    assert "# TYPE ticketflow_tickets_created_total counter" in business and "process_cpu_seconds_total" in business
    assert "ticketflow_http_requests" not in business
    assert value(sdk, "temporal_num_pollers") > 0
    assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]


# --- the business counters move where the work is done ---


def sample(name: str, labels: dict[str, str]) -> float:
    return metrics.WORKER.get_sample_value(name, labels) or 0.0


async def test_dispatch_notifications_and_stock_count_in_their_activities(db: Database) -> None:
    # Dispatch: one decision, timed by strategy and outcome.
    region = f"m{uuid.uuid4().hex[:8]}"
    async with db.session() as session:
        session.add(Actor(id=f"{region}-eng", name="Metrics probe", roles=["engineer"], regions=[region]))
        await session.commit()
    forget_rosters()
    call = DispatchCall(request=DispatchRequest(region=region, roles=["engineer"]))
    labels = {"strategy": call.request.strategy.value, "outcome": "assigned"}
    before = sample("ticketflow_dispatch_decision_seconds_count", labels)
    decision = await ActivityEnvironment().run(decide_assignee, call)
    assert decision.chosen_id == f"{region}-eng"
    assert sample("ticketflow_dispatch_decision_seconds_count", labels) == before + 1
    assert sample("ticketflow_dispatch_decision_seconds_sum", labels) > 0

    # Notifications: the inbox is written by the activity (sent once, a repeat adds nothing); an
    # email with no channel on this worker fails, given up after its only attempt.
    tid = f"M{uuid.uuid4().hex[:12].upper()}"
    req = NotifyInput(
        dedup_key=f"{tid}:node1:assigned",
        event="assigned",
        urgency=Urgency.NORMAL,
        ticket=TicketBrief(id=tid, title="Metrics probe", region="east", priority="normal", status="assigned"),
        recipients=["eng-li", "metrics-probe@plant.test"],
    )
    sent, given_up = {"channel": "inbox"}, {"channel": "email", "final": "true"}
    before_sent = sample("ticketflow_notifications_sent_total", sent)
    before_failed = sample("ticketflow_notifications_failed_total", given_up)
    for _ in range(2):  # the activity retried: the inbox row is there already
        await ActivityEnvironment().run(notify.send_notification, req)
    assert sample("ticketflow_notifications_sent_total", sent) == before_sent + 1
    async with db.session() as session:
        rows = await session.exec(
            select(NotificationOutbox).where(
                col(NotificationOutbox.base_key) == req.dedup_key,
                col(NotificationOutbox.channel) == "email",
                # eng-li's own address too, when another test gave eng-li one (a shared database)
                col(NotificationOutbox.recipient) == "metrics-probe@plant.test",
            )
        )
        [row] = list(rows)
    deliverer = notify.Deliverer(db, NotifySettings(notify_max_attempts=1), {})  # no email channel here
    assert await deliverer.deliver(row)
    assert sample("ticketflow_notifications_failed_total", given_up) == before_failed + 1

    # Stock: each reservation by region and result.
    w = await world(db, {"PD": PUDONG}, {"FAN": (0, 0)}, {("PD", "FAN"): 1})
    reserved, short = {"region": "east", "status": "reserved"}, {"region": "east", "status": "insufficient"}
    before = (
        sample("ticketflow_stock_reservations_total", reserved),
        sample("ticketflow_stock_reservations_total", short),
    )
    for expected in ("reserved", "insufficient"):  # one part in stock: the second finds none
        result = await ActivityEnvironment().run(reserve_parts, reserve_input(w, ticket(), {"FAN": 1}))
        assert result.status == expected
    after = (
        sample("ticketflow_stock_reservations_total", reserved),
        sample("ticketflow_stock_reservations_total", short),
    )
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
