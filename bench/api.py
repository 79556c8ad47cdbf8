"""Ticket creation through the real API vs a direct ``start_workflow``, same server, same run.

    .venv/bin/python bench/api.py [--tickets 200] [--concurrency 20] [--rounds 2]

Starts a fresh ``temporal server start-dev`` (in memory), a throw-away read model (a SQLite file,
or a fresh schema of TICKETFLOW_DATABASE_URL when that is PostgreSQL) with the demo data, and
two processes with the run's settings: ``python -m workers`` and ``python -m api`` (uvicorn
serving ``create_app``; the rate limit off, the bench is one credential). Then, per round:
N ``POST /tickets`` through httpx (concurrency C, ``demo-agent-wang``), and N direct
``client.start_workflow`` of the same TicketInput (the one the API sent, read back from the
first ticket's history, with a new id and time) and the same start options. Rounds alternate
direct/HTTP so machine noise hits both alike. Prints p50/p99 of each (every round, and over
all rounds) and the p99 ratio HTTP/direct over all rounds (goal ≤ 1.2), met or not.
"""

import argparse
import asyncio
import compileall
import os
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.common import WorkflowIDReusePolicy  # noqa: E402

from api.demo import load_all  # noqa: E402
from bench.support import (  # noqa: E402
    Children,
    cpu_seconds,
    descendants_named,
    dev_server,
    free_port,
    pct,
    read_model,
    settings_env,
    tmp_dir,
)
from domain.ids import new_ticket_id  # noqa: E402
from models import search_attributes as attrs  # noqa: E402
from models.db import Database  # noqa: E402
from models.demo import demo_api_key  # noqa: E402
from models.ticket import TicketInput, initial_state  # noqa: E402
from workflows.ticket import TicketWorkflow, workflow_id  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "bench-api"
GOAL = 1.2
BODY = {"ticket_type": "general", "region": "east", "title": "bench"}
HEADERS = {"X-API-Key": demo_api_key("agent-wang")}


async def drive(n: int, concurrency: int, one: Callable[[], Awaitable[object]]) -> list[float]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def run_one() -> None:
        async with sem:
            t0 = time.perf_counter()
            try:
                await one()
            except Refused:
                return
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*[run_one() for _ in range(n)])
    return latencies


ERRORS: dict[str, int] = {}  # refused creations by status and code; left out of the latencies


async def via_http(http: httpx.AsyncClient) -> str:
    r = await http.post("/tickets", json=BODY, headers=HEADERS)
    if r.status_code != 201:
        why = (
            f"{r.status_code} {r.json().get('code', '') if r.headers.get('content-type', '').endswith('json') else ''}"
        )
        ERRORS[why] = ERRORS.get(why, 0) + 1
        raise Refused(why)
    return str(r.json()["ticket_id"])


class Refused(Exception):
    pass


async def sent_input(client: Client, ticket_id: str) -> TicketInput:
    """The TicketInput the API started ``ticket_id`` with (its history's first event)."""
    history = await client.get_workflow_handle(workflow_id(ticket_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [inp] = await client.data_converter.decode(started.input.payloads, [TicketInput])
    assert isinstance(inp, TicketInput)
    return inp


async def direct(client: Client, template: TicketInput) -> None:
    """What ``api.services.tickets.create_ticket`` sends Temporal, without the API around it."""
    tid = new_ticket_id()
    inp = template.model_copy(update={"ticket_id": tid, "created_at": datetime.now(UTC)})
    state = initial_state(inp)
    await client.start_workflow(
        TicketWorkflow.run,
        inp,
        id=workflow_id(tid),
        task_queue=QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=attrs.at_start(state.status.value, inp.region, inp.priority.value, inp.ticket_type),
        static_summary=f"{inp.template.spec.name} · {inp.region} · {inp.priority.value}: {inp.title}",
        static_details=f"Ticket **{tid}** from {inp.channel}, created by {inp.created_by.id}",
    )


async def wait_healthy(http: httpx.AsyncClient, children: Children, logs: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        children.check(logs)
        try:
            if (await http.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the API was not healthy after {timeout:g}s:\n{logs[-1].read_text()[-2000:]}")
        await asyncio.sleep(0.2)


def line(name: str, lat: list[float]) -> str:
    top = max(lat, default=float("nan")) * 1000
    return f"{name:6s} p50 {pct(lat, 50):6.0f} ms  p99 {pct(lat, 99):6.0f} ms  max {top:6.0f} ms  (n={len(lat)})"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    for package in ("workflows", "domain", "models", "activities", "bench", "store", "api", "workers"):
        compileall.compile_dir(ROOT / package, quiet=1)

    tmp = tmp_dir("tf-bench-api-")
    key = secrets.token_hex(32)
    children = Children()
    rounds: list[tuple[list[float], list[float]]] = []
    cpu: dict[str, dict[str, float]] = {"direct": defaultdict(float), "http": defaultdict(float)}
    async with AsyncExitStack() as stack:
        db_url = await stack.enter_async_context(read_model(tmp))
        db = Database(db_url)
        stack.push_async_callback(db.dispose)
        await load_all(db)  # actors and their keys, regions, the preset templates
        env = await stack.enter_async_context(await dev_server(tmp))
        address = env.client.service_client.config.target_host
        stack.callback(children.stop)
        port = free_port()
        penv = settings_env(db_url, address, QUEUE, "bench", key, tmp) | {
            "TICKETFLOW_API_HOST": "127.0.0.1",
            "TICKETFLOW_API_PORT": str(port),
            "TICKETFLOW_RATE_LIMIT_PER_MINUTE": "0",
        }
        logs = [tmp / "worker.log", tmp / "api.log"]
        worker = children.start([sys.executable, "-m", "workers"], penv, logs[0])
        api = children.start([sys.executable, "-m", "api"], penv, logs[1])
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60)
        )
        await wait_healthy(http, children, logs)
        client = env.client
        template = await sent_input(client, await via_http(http))
        await drive(20, 10, lambda: via_http(http))  # warm up both paths
        await drive(20, 10, lambda: direct(client, template))
        # CPU seconds per path, by process: this driver (where a direct start is made), the API, the
        # worker and the dev server; the creations' own cost, which noise on a shared machine moves
        # much less than their latency.
        meter = {
            "driver": [os.getpid()],
            "api": [api.pid],
            "worker": [worker.pid],
            "server": descendants_named("temporal"),
        }
        for _ in range(args.rounds):
            before = {k: cpu_seconds(p) for k, p in meter.items()}
            d = await drive(args.tickets, args.concurrency, lambda: direct(client, template))
            middle = {k: cpu_seconds(p) for k, p in meter.items()}
            h = await drive(args.tickets, args.concurrency, lambda: via_http(http))
            after = {k: cpu_seconds(p) for k, p in meter.items()}
            rounds.append((d, h))
            for k in meter:
                cpu["direct"][k] += middle[k] - before[k]
                cpu["http"][k] += after[k] - middle[k]
        children.check(logs)

    read = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    print(
        f"api: {args.tickets} creations x {args.rounds} rounds per path, concurrency {args.concurrency}, dev server "
        f"in-memory, read model {read}, 1 uvicorn + 1 worker process, {os.cpu_count()} cores"
    )
    for i, (d, h) in enumerate(rounds, 1):
        print(f"  round {i}: {line('direct', d)} | {line('http', h)}")
    all_d = [x for d, _ in rounds for x in d]
    all_h = [x for _, h in rounds for x in h]
    print(f"  all:     {line('direct', all_d)}")
    print(f"           {line('http', all_h)}")
    n = args.tickets * args.rounds
    for path in ("direct", "http"):
        parts = ", ".join(f"{k} {v * 1000 / n:.1f}" for k, v in cpu[path].items())
        print(f"  CPU ms per creation, {path:6s}: {parts} (total {sum(cpu[path].values()) * 1000 / n:.1f})")
    if ERRORS:
        print(f"  refused HTTP creations (left out above): {ERRORS}")
    ratio = pct(all_h, 99) / pct(all_d, 99)
    print(f"  p99 ratio http/direct = {ratio:.2f}  (goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    asyncio.run(main())
    # Leave without interpreter finalisation, as workers.main does (the Temporal core's threads).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
