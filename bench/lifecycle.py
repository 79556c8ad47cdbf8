"""Ticket lifecycle throughput vs. a bare workflow with the same Updates, same server, same run.

    .venv/bin/python bench/lifecycle.py [--tickets 200] [--concurrency 50] [--rounds 2]

Starts a fresh ``temporal server start-dev`` (in memory; ``--sqlite`` for a file), a worker
for TicketWorkflow (real projection into a fresh SQLite read model, or
TICKETFLOW_DATABASE_URL) and one for BareWorkflow, then drives N tickets each through
create → claim → start → resolve → close, and N bare workflows through four Updates.
Prints workflows/s for both, the ratio (goal ≥ 0.8) and p50/p99 latency per workflow.
Rounds alternate bare/ticket so machine noise hits both alike; the best round of each counts.
The project's modules are byte-compiled first, as the Docker image does: the workflow sandbox
re-imports them for every new run, and with PYTHONDONTWRITEBYTECODE set and no .pyc files it
would compile them from source each time (``--no-compile`` measures that case).
"""

import argparse
import asyncio
import compileall
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from activities import resources  # noqa: E402
from activities.registry import ACTIVITIES  # noqa: E402
from api.signing import signing_client  # noqa: E402
from bench.bare import BareWorkflow, Step  # noqa: E402
from domain import signing  # noqa: E402
from models import search_attributes as attrs  # noqa: E402
from models.db import Database  # noqa: E402
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
from workflows.ticket import TicketWorkflow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GENERAL = TemplateVersion(
    key="general",
    version=1,
    spec=TemplateSpec.model_validate(yaml.safe_load((ROOT / "templates/general.yaml").read_text())),
)
AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
ENG = ActorRef(id="eng-li", roles=["engineer"], regions=["east"])


async def one_ticket(client, queue: str) -> None:
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
    h = await client.start_workflow(TicketWorkflow.run, inp, id=f"ticket-{tid}", task_queue=queue)
    await h.execute_update(TicketWorkflow.claim, ClaimInput(actor=ENG))
    await h.execute_update(TicketWorkflow.start, StartInput(actor=ENG))
    await h.execute_update(TicketWorkflow.resolve, ResolveInput(actor=ENG, resolution="done"))
    await h.execute_update(TicketWorkflow.close, CloseInput(actor=AGENT))
    await h.result()


async def one_bare(client, queue: str) -> None:
    h = await client.start_workflow(BareWorkflow.run, id=f"bare-{uuid.uuid4().hex}", task_queue=queue)
    for name in ("claim", "start", "resolve", "close"):
        await h.execute_update(BareWorkflow.step, Step(name=name))
    await h.result()


async def drive(n: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def run_one() -> None:
        async with sem:
            t0 = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[run_one() for _ in range(n)])
    return n / (time.perf_counter() - t0), sorted(latencies)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tickets", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sqlite", action="store_true", help="dev server persists to a SQLite file")
    ap.add_argument("--no-compile", action="store_true", help="do not byte-compile the project first")
    args = ap.parse_args()
    if not args.no_compile:
        for package in ("workflows", "domain", "models", "activities", "bench"):
            compileall.compile_dir(ROOT / package, quiet=1)

    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-"))
    db_url = os.environ.get("TICKETFLOW_DATABASE_URL") or f"sqlite:///{tmp / 'read.db'}"
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(url=db_url, configure_logger=False)
    command.upgrade(cfg, "heads")
    db = Database(db_url)
    resources.use_database(db)

    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.prefix) / "bin" / "temporal"),
        search_attributes=attrs.ALL,
        dev_server_database_filename=str(tmp / "temporal.db") if args.sqlite else None,
        dev_server_log_level="error",
    )
    # Ticket actions are signed as the API signs them (domain/signing.py); bare ones are not.
    key = secrets.token_bytes(32)
    signing.install_keys({"bench": key})
    client = signing_client(env.client, "bench", key)
    q_ticket, q_bare = "bench-ticket", "bench-bare"
    async with (
        env,
        Worker(client, task_queue=q_ticket, workflows=[TicketWorkflow], activities=ACTIVITIES),
        Worker(client, task_queue=q_bare, workflows=[BareWorkflow]),
    ):
        await drive(20, 10, lambda: one_bare(client, q_bare))  # warm up both paths
        await drive(20, 10, lambda: one_ticket(client, q_ticket))
        results: dict[str, list[tuple[float, list[float]]]] = {"bare": [], "ticket": []}
        for _ in range(args.rounds):
            results["bare"].append(await drive(args.tickets, args.concurrency, lambda: one_bare(client, q_bare)))
            results["ticket"].append(await drive(args.tickets, args.concurrency, lambda: one_ticket(client, q_ticket)))

    await db.dispose()
    persistence = "sqlite file" if args.sqlite else "in-memory"
    print(
        f"lifecycle: {args.tickets} workflows x {args.rounds} rounds, concurrency {args.concurrency}, "
        f"dev server {persistence}, read model {db_url.split(':')[0]}, 4 updates each"
    )
    best = {}
    for kind, runs in results.items():
        rate, lat = max(runs, key=lambda r: r[0])
        best[kind] = rate
        rates = ", ".join(f"{r:.1f}" for r, _ in runs)
        print(
            f"  {kind:6s} best {rate:6.1f}/s (rounds: {rates})  p50 {pct(lat, 50):6.0f} ms  p99 {pct(lat, 99):6.0f} ms"
            f"  mean {statistics.mean(lat) * 1000:6.0f} ms"
        )
    print(f"  ratio ticket/bare = {best['ticket'] / best['bare']:.2f}  (goal >= 0.80)")


if __name__ == "__main__":
    asyncio.run(main())
