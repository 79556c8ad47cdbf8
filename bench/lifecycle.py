"""Ticket lifecycle throughput vs. a bare workflow with the same Updates, same server, same run.

    .venv/bin/python bench/lifecycle.py [--tickets 200] [--concurrency 50] [--rounds 2] [--workers N]

Starts a fresh ``temporal server start-dev`` (in memory; ``--sqlite`` for a file), a worker
for TicketWorkflow (``workers.main.build_worker`` with the run's settings: real projection into
a fresh SQLite read model, or a throw-away schema of TICKETFLOW_DATABASE_URL when that is
PostgreSQL) and one for BareWorkflow, then drives N tickets each through
create → claim → start → resolve → close, and N bare workflows through four Updates.
Prints workflows/s for both, the ratio (goal ≥ 0.8), p50/p99 latency per workflow and per
action (ticket beside bare), and the workflow tasks slower than 1 s: read back from every
measured workflow's history (WorkflowTaskStarted → WorkflowTaskCompleted, as the server recorded
them; scheduled → completed, the queue wait included, is counted beside it).
Rounds alternate bare/ticket so machine noise hits both alike; the best round of each counts.

``--workers 0`` (default) runs both workers inside this process, beside the driver. ``--workers
N`` starts N worker processes (this file with ``--serve-worker``: the same two workers, settings
from the environment as ``python -m workers`` reads them) against the one dev server, and prints
the throughput in total and per worker process, with each process's share of the workflow tasks.

The project's modules are byte-compiled first, as the Docker image does: the workflow sandbox
re-imports them for every new run, and with PYTHONDONTWRITEBYTECODE set and no .pyc files it
would compile them from source each time (``--no-compile`` measures that case).
"""

import argparse
import asyncio
import compileall
import os
import secrets
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities import resources  # noqa: E402
from api.signing import signing_client  # noqa: E402
from bench import support  # noqa: E402
from bench.bare import BareWorkflow, Step  # noqa: E402
from bench.support import Children, Tasks, pct  # noqa: E402
from models.db import Database  # noqa: E402
from models.settings import Settings, get_settings  # noqa: E402
from models.template import TemplateSpec, TemplateVersion  # noqa: E402
from models.ticket import (  # noqa: E402
    ActorRef,
    ClaimInput,
    CloseInput,
    Priority,
    ResolveInput,
    StartInput,
    TicketInput,
)
from workers.client import connect  # noqa: E402
from workers.main import build_worker  # noqa: E402
from workflows.ticket import TicketWorkflow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GENERAL = TemplateVersion(
    key="general",
    version=1,
    spec=TemplateSpec.model_validate(yaml.safe_load((ROOT / "templates/general.yaml").read_text())),
)
AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])
Q_TICKET, Q_BARE = "bench-ticket", "bench-bare"
KEY_ID = "bench"
ACTIONS = ("create", "claim", "start", "resolve", "close", "result")
READY = "bench-worker ready"
T = TypeVar("T")


@dataclass
class Round:
    rate: float = 0.0
    latencies: list[float] = field(default_factory=list)  # per workflow, create → result
    actions: dict[str, list[float]] = field(default_factory=lambda: {a: [] for a in ACTIONS})
    workflow_ids: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group, this round


async def _timed(rnd: Round, action: str, aw: Awaitable[T]) -> T:
    t0 = time.perf_counter()
    out = await aw
    rnd.actions[action].append(time.perf_counter() - t0)
    return out


async def one_ticket(client: Client, rnd: Round) -> None:
    tid = f"B{uuid.uuid4().hex[:14].upper()}"
    inp = TicketInput(
        ticket_id=tid,
        ticket_type="repair",
        region="east",
        priority=Priority.NORMAL,
        title="bench",
        created_by=AGENT,
        created_at=datetime.now(UTC),
        template=GENERAL,
    )
    rnd.workflow_ids.append(f"ticket-{tid}")
    h = await _timed(
        rnd, "create", client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{tid}", task_queue=Q_TICKET)
    )
    await _timed(rnd, "claim", h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG)))
    await _timed(rnd, "start", h.execute_update(TicketWorkflow.start, StartInput(actor=ENG)))
    await _timed(rnd, "resolve", h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="done")))
    await _timed(rnd, "close", h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT)))
    await _timed(rnd, "result", h.result())


async def one_bare(client: Client, rnd: Round) -> None:
    wid = f"bare-{uuid.uuid4().hex}"
    rnd.workflow_ids.append(wid)
    h = await _timed(rnd, "create", client.start_workflow(BareWorkflow.run, id=wid, task_queue=Q_BARE))
    for name in ("claim", "start", "resolve", "close"):
        await _timed(rnd, name, h.execute_update(BareWorkflow.step, Step(name=name)))
    await _timed(rnd, "result", h.result())


Meter = dict[str, list[int]]  # a process group's name → its pids (worker processes, dev server)


async def drive(n: int, concurrency: int, one: Callable[[Round], Awaitable[None]], meter: Meter | None = None) -> Round:
    sem = asyncio.Semaphore(concurrency)
    rnd = Round()
    before = {k: support.cpu_seconds(p) for k, p in (meter or {}).items()}

    async def run_one() -> None:
        async with sem:
            t0 = time.perf_counter()
            await one(rnd)
            rnd.latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[run_one() for _ in range(n)])
    rnd.rate = n / (time.perf_counter() - t0)
    rnd.cpu = {k: support.cpu_seconds(p) - before[k] for k, p in (meter or {}).items()}
    return rnd


def bench_workers(client: Client, settings: Settings) -> tuple[Worker, Worker]:
    """The ticket worker exactly as ``python -m workers`` builds it (its signing keys, versioning
    options, every workflow and activity) on the ticket queue, and the bare one."""
    return (
        build_worker(client, settings, task_queue=Q_TICKET),
        Worker(client, task_queue=Q_BARE, workflows=[BareWorkflow]),
    )


async def serve_worker() -> None:
    """``--serve-worker``: one worker process of ``--workers N`` (settings from the environment)."""
    settings = get_settings()
    db = Database(settings.database_url, settings.db_statement_timeout_ms)
    resources.use_database(db)
    client = await connect(settings.temporal_address, settings.temporal_namespace, 30)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    ticket, bare = bench_workers(client, settings)
    async with ticket, bare:
        print(f"{READY} {client.identity}", flush=True)
        await stop.wait()
    await db.dispose()


def _settings(db_url: str, address: str, key: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=db_url,
        temporal_address=address,
        task_queue=Q_TICKET,
        action_signing_key=SecretStr(key),
        action_signing_key_id=KEY_ID,
        data_dir=str(data_dir),
    )


def _action_table(best: dict[str, Round]) -> None:
    print("  per action (best round), ms:      ticket p50   p99 |   bare p50   p99")
    for a in ACTIONS:
        t, b = best["ticket"].actions[a], best["bare"].actions[a]
        print(f"    {a:8s}{'':22s}{pct(t, 50):9.0f} {pct(t, 99):5.0f} | {pct(b, 50):10.0f} {pct(b, 99):5.0f}")


def _cpu_table(results: dict[str, list[Round]], n: int, worker_note: str) -> None:
    """CPU milliseconds per workflow, the lowest round of each kind: the engine's own cost,
    steadier than throughput when other jobs share the machine."""
    per = {k: {g: min(r.cpu[g] for r in runs) * 1000 / n for g in runs[0].cpu} for k, runs in results.items()}
    for group in per["ticket"]:
        t, b = per["ticket"][group], per["bare"][group]
        note = f" ({worker_note})" if group == "worker" and worker_note else ""
        print(f"  CPU per workflow, {group}{note}: ticket {t:.1f} ms, bare {b:.1f} ms (ratio bare/ticket {b / t:.2f})")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="worker processes (0: in this process)")
    ap.add_argument("--sqlite", action="store_true", help="dev server persists to a SQLite file")
    ap.add_argument("--no-compile", action="store_true", help="do not byte-compile the project first")
    args = ap.parse_args()
    if not args.no_compile:
        for package in ("workflows", "domain", "models", "activities", "bench", "store", "api", "workers"):
            compileall.compile_dir(ROOT / package, quiet=1)

    tmp = support.tmp_dir("tf-bench-")
    # Ticket actions are signed as the API signs them (domain/signing.py); bare ones are not.
    key = secrets.token_hex(32)
    children = Children()
    results: dict[str, list[Round]] = {"bare": [], "ticket": []}
    async with AsyncExitStack() as stack:
        db_url = await stack.enter_async_context(support.read_model(tmp))
        env = await stack.enter_async_context(await support.dev_server(tmp, args.sqlite))
        address = env.client.service_client.config.target_host
        settings = _settings(db_url, address, key, tmp)
        client = signing_client(env.client, KEY_ID, key.encode())
        if args.workers == 0:
            db = Database(db_url)
            stack.push_async_callback(db.dispose)
            resources.use_database(db)
            for w in bench_workers(client, settings):
                await stack.enter_async_context(w)
        else:
            stack.callback(children.stop)
            penv = support.settings_env(db_url, address, Q_TICKET, KEY_ID, key, tmp)
            logs = [tmp / f"worker-{i}.log" for i in range(args.workers)]
            for log in logs:
                children.start([sys.executable, str(Path(__file__).resolve()), "--serve-worker"], penv, log)
            for log in logs:
                await support.wait_for_line(log, READY, children)
        # The CPU each round costs: the worker process(es) (the driver's own process with
        # --workers 0, so the driver counts too) and the dev server.
        meter: Meter = {
            "worker": [p.pid for p in children.procs] if args.workers else [os.getpid()],
            "server": support.descendants_named("temporal"),
        }
        await drive(20, 10, lambda r: one_bare(client, r))  # warm up both paths
        await drive(20, 10, lambda r: one_ticket(client, r))
        for _ in range(args.rounds):
            results["bare"].append(await drive(args.tickets, args.concurrency, lambda r: one_bare(client, r), meter))
            results["ticket"].append(
                await drive(args.tickets, args.concurrency, lambda r: one_ticket(client, r), meter)
            )
        children.check()
        tasks: dict[str, Tasks] = {}
        for kind, runs in results.items():
            tasks[kind] = await support.workflow_tasks(env.client, [w for r in runs for w in r.workflow_ids])

    persistence = "sqlite file" if args.sqlite else "in-memory"
    where = "in the driver process" if args.workers == 0 else f"{args.workers} worker process(es)"
    print(
        f"lifecycle: {args.tickets} workflows x {args.rounds} rounds, concurrency {args.concurrency}, "
        f"dev server {persistence}, read model {db_url.split(':')[0]}, 4 updates each, workers {where}, "
        f"{os.cpu_count()} cores"
    )
    best: dict[str, Round] = {}
    for kind, runs in results.items():
        b = best[kind] = max(runs, key=lambda r: r.rate)
        rates = ", ".join(f"{r.rate:.1f}" for r in runs)
        lat = b.latencies
        print(
            f"  {kind:6s} best {b.rate:6.1f}/s (rounds: {rates})"
            f"  p50 {pct(lat, 50):6.0f} ms  p99 {pct(lat, 99):6.0f} ms"
            f"  mean {statistics.mean(lat) * 1000:6.0f} ms"
        )
    print(f"  ratio ticket/bare = {best['ticket'].rate / best['bare'].rate:.2f}  (goal >= 0.80)")
    _cpu_table(results, args.tickets, "the driver's process (workers and driver)" if args.workers == 0 else "")
    _action_table(best)
    for kind in ("bare", "ticket"):
        print(f"  slow tasks, {kind:6s} (all {args.rounds} rounds): {tasks[kind].summary()}")
    if args.workers:
        n = args.workers
        for kind in ("bare", "ticket"):
            share = ", ".join(f"{i or '(none)'}: {c}" for i, c in sorted(tasks[kind].by_identity.items()))
            print(
                f"  {kind:6s} {best[kind].rate:6.1f}/s total, {best[kind].rate / n:6.1f}/s per worker process "
                f"(workflow tasks per process: {share})"
            )


if __name__ == "__main__":
    asyncio.run(serve_worker() if "--serve-worker" in sys.argv else main())
    # As workers.main: leave without interpreter finalisation (the Temporal core's native threads
    # can abort it: "PyGILState_Release … finalizing").
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
