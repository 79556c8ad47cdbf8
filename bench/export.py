"""The reconciliation export (``GET /statements/export.csv``) of 100,000 statements, streamed,
against a bare ``SELECT`` + ``csv.writer`` over the same rows (issue #14: ≤ 5 s, constant memory).

    .venv/bin/python bench/export.py [--rows 100000] [--small 10000] [--rounds 2] [--backend sqlite|postgresql|both]

Each backend gets a throw-away database, migrated with alembic and dropped at the end: a SQLite
file in a temporary directory, and — when TICKETFLOW_DATABASE_URL (or --postgres-url) is a
PostgreSQL URL — a schema of its own there (``--backend`` defaults to both then, else SQLite).
``--rows`` final statements of one region are bulk-inserted (realistic: the full statement JSON
of bench/settlement.py's 10-line and 17-line statements, four ticket types, CNY and USD, one a
second), then the export runs through the real app (``api.app.create_app``) served by uvicorn on
a loopback port, read by an httpx client as it arrives (byte counts and the last lines kept,
never the body). ``--small`` is the same export over the first ``--small`` rows (a ``to=``
bound): its figures beside the big one's show whether memory grows with the rows.

Per size and path it prints the best round's seconds, rows/s, the process's CPU seconds (client
+ server; PostgreSQL's own work is not in them), the RSS growth during the export (peak minus
start, sampled from /proc/self/statm every 5 ms) and, in one more run under ``tracemalloc``, the
peak of Python allocations. The **baseline** is a bare ``SELECT`` of the same columns, same
filter and order, fetched and written with ``csv.writer`` to memory: no HTTP, no money
formatting, no streaming — what an export costs at the least (its memory grows with the rows).
The goal: ``--rows`` (100,000) in ≤ 5 s.

The app is given no Temporal client (the export never uses one): nothing else is needed.
"""

import argparse
import asyncio
import csv
import gc
import io
import os
import secrets
import socket
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import uvicorn  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from temporalio.client import Client  # noqa: E402

from api.app import create_app  # noqa: E402
from bench.settlement import heavy_request, realistic_request, realistic_rules  # noqa: E402
from domain.pricing import compile_rules, price  # noqa: E402
from models.db import Database, is_sqlite, sync_url  # noqa: E402
from models.settings import Settings  # noqa: E402
from models.settlement_tables import StatementRow  # noqa: E402
from models.tables import Actor, ApiKey, Region  # noqa: E402
from store.statements import EXPORT_COLUMNS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 5.0
REGION, ACTOR, KEY = "bench", "bench-finance", "bench-finance-key"
START = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ("equipment_repair", "installation", "inspection", "maintenance")
INSERT_BATCH = 5_000
PAGE = 4096  # bytes per page, for /proc/self/statm


# --- the database ---


def _migrate(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes.update(url=url, configure_logger=False)
    command.upgrade(cfg, "heads")


def _dsn(url: str) -> str:
    return make_url(sync_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def _schema_url(base: str, schema: str) -> str:
    u = make_url(sync_url(base))
    return u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _statements() -> list[tuple[dict[str, Any], str, Decimal, Decimal, Decimal]]:
    """Two real statements (10 and 17 lines, USD) and the same in CNY: JSON and figures."""
    book = compile_rules(realistic_rules())
    out = []
    for request in (realistic_request(), heavy_request()):
        for currency in ("USD", "CNY"):
            st = price(book, request.model_copy(update={"currency": currency}))
            out.append((st.model_dump(mode="json"), currency, st.totals.net, st.totals.tax, st.totals.total))
    return out


async def _seed(db: Database, rows: int) -> float:
    """The region, a finance actor with an API key, and ``rows`` final statements one a second
    from ``START`` (bulk inserts of ``INSERT_BATCH``). Returns the seconds it took."""
    began = time.perf_counter()
    async with db.session() as s:
        s.add(Region(code=REGION, name="Export benchmark"))
        s.add(Actor(id=ACTOR, name="Bench finance", roles=["finance"], regions=[REGION]))
        await s.flush()
        s.add(ApiKey.for_secret(ACTOR, KEY, created_by="bench"))
        await s.commit()
    kinds = _statements()
    table = StatementRow.__table__  # type: ignore[attr-defined]
    for first in range(0, rows, INSERT_BATCH):
        batch = []
        for i in range(first, min(rows, first + INSERT_BATCH)):
            statement, currency, net, tax, total = kinds[i % 7 % len(kinds)]  # mostly the 10-line ones
            batch.append(
                {
                    "ticket_id": f"KB{i:012d}",
                    "ticket_version": 1,
                    "status": "final",
                    "region": REGION,
                    "ticket_type": TYPES[i % len(TYPES)],
                    "rules_version": "2026-11",
                    "currency": currency,
                    "net": net,
                    "tax": tax,
                    "total": total,
                    "statement": statement,
                    "created_at": START + timedelta(seconds=i),
                }
            )
        async with db.engine.begin() as conn:
            await conn.execute(table.insert(), batch)
    if not is_sqlite(db.url):
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE statement"))
    return time.perf_counter() - began


# --- measuring ---


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


async def _measure(run: Callable[[], Awaitable[int]], traced: bool = False) -> dict[str, float]:
    """Run ``run`` (it returns the rows it wrote) once: wall and CPU seconds, RSS growth (peak
    sampled every 5 ms, minus the start), and with ``traced`` the tracemalloc peak."""
    gc.collect()
    peak = base = _rss()
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _rss())
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    if traced:
        tracemalloc.start()
    cpu, began = time.process_time(), time.perf_counter()
    try:
        rows = await run()
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        traced_peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        if traced:
            tracemalloc.stop()
        stop.set()
        await sampler
    peak = max(peak, _rss())
    return {"rows": rows, "s": seconds, "cpu": cpu, "rss": peak - base, "traced": traced_peak}


def _window(rows: int) -> dict[str, str]:
    return {"from": START.isoformat(), "to": (START + timedelta(seconds=rows)).isoformat()}


async def _export(http: httpx.AsyncClient, rows: int) -> int:
    """The export of the first ``rows`` statements over HTTP, read as it arrives."""
    params = {"region": REGION, **_window(rows)}
    lines, tail = 0, b""
    async with http.stream("GET", "/statements/export.csv", params=params, headers={"X-API-Key": KEY}) as r:
        if r.status_code != 200:
            raise RuntimeError(f"export answered {r.status_code}: {(await r.aread())[:300]!r}")
        if not r.headers["content-type"].startswith("text/csv"):
            raise RuntimeError(f"export answered {r.headers['content-type']}")
        async for chunk in r.aiter_raw():
            lines += chunk.count(b"\r\n")
            tail = (tail + chunk)[-200:]
    last = tail.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
    if not last.startswith(b"TOTAL,"):
        raise RuntimeError(f"the export did not end with its TOTAL rows: {last!r}")
    body = lines - 1 - len({"USD", "CNY"})  # the header; one TOTAL per currency
    if body != rows:
        raise RuntimeError(f"the export sent {body} statements, not {rows}")
    return body


async def _baseline(db: Database, rows: int) -> int:
    """A bare SELECT of the same columns, filter and order, fetched and written by csv.writer."""
    window = _window(rows)
    start, end = datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"])
    if is_sqlite(db.url):  # stored naive UTC there
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    q = sa.text(
        f"SELECT {', '.join(EXPORT_COLUMNS)} FROM statement WHERE region = :region AND status = 'final' "
        "AND created_at >= :start AND created_at < :end ORDER BY created_at, id"
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    async with db.engine.connect() as conn:
        result = (await conn.execute(q, {"region": REGION, "start": start, "end": end})).all()
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(result)
    return len(result)


async def _bench(url: str, rows: int, small: int, rounds: int) -> dict[str, Any]:
    db = Database(url)
    try:
        seeded = await _seed(db, rows)
        settings = Settings(database_url=url, environment="development", rate_limit_per_minute=0)
        # The export never reaches Temporal: no client is connected.
        app = create_app(settings, client=cast(Client, object()))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                await _export(http, min(small, 1000))  # warm up: connections, compiled queries
                await _baseline(db, min(small, 1000))
                best: dict[tuple[str, int], dict[str, float]] = {}
                for _ in range(rounds):
                    for n in (small, rows):
                        for path, run in (
                            ("streamed", lambda n=n: _export(http, n)),
                            ("baseline", lambda n=n: _baseline(db, n)),
                        ):
                            m = await _measure(run)
                            key = (path, n)
                            if key not in best or m["s"] < best[key]["s"]:
                                best[key] = m
                for n in (small, rows):  # one traced run each: tracemalloc slows Python several times
                    for path, run in (
                        ("streamed", lambda n=n: _export(http, n)),
                        ("baseline", lambda n=n: _baseline(db, n)),
                    ):
                        best[(path, n)]["traced"] = (await _measure(run, traced=True))["traced"]
        finally:
            server.should_exit = True
            await serving
        return {"seed_s": seeded, "figures": best}
    finally:
        await db.dispose()


def _on_sqlite(rows: int, small: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tf-bench-export-") as tmp:
        url = f"sqlite:///{tmp}/ticketflow.db"
        _migrate(url)
        return asyncio.run(_bench(url, rows, small, rounds))


def _on_postgres(base: str, rows: int, small: int, rounds: int) -> dict[str, Any]:
    schema = f"tf_bench_export_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_dsn(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = _schema_url(base, schema)
        _migrate(url)
        return asyncio.run(_bench(url, rows, small, rounds))
    finally:
        with psycopg.connect(_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _mb(n: float) -> str:
    return f"{n / 1_048_576:7.1f} MB"


def _print(backend: str, rows: int, small: int, r: dict[str, Any]) -> bool:
    f = r["figures"]
    print(f"\n{backend}: {rows:,} statements seeded in {r['seed_s']:.1f} s")
    print(f"  {'path':9} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'cpu s':>6} {'RSS growth':>11} {'traced peak':>11}")
    for path in ("streamed", "baseline"):
        for n in (small, rows):
            m = f[(path, n)]
            print(
                f"  {path:9} {m['rows']:8,} {m['s']:8.2f} {m['rows'] / m['s']:9,.0f} {m['cpu']:6.2f}"
                f" {_mb(m['rss']):>11} {_mb(m['traced']):>11}"
            )
    big, floor = f[("streamed", rows)], f[("baseline", rows)]
    grow = big["traced"] / f[("streamed", small)]["traced"]
    met = bool(big["s"] <= GOAL_S)
    print(f"  streamed / baseline time at {rows:,}: {big['s'] / floor['s']:.2f}")
    print(f"  streamed traced peak at {rows:,} / at {small:,}: {grow:.2f} (constant memory: ≈ 1)")
    print(f"  goal: {rows:,} in ≤ {GOAL_S:.0f} s: {big['s']:.2f} s — {'met' if met else 'NOT met'}")
    return met


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000, help="the same export over the first SMALL rows")
    ap.add_argument("--rounds", type=int, default=2, help="best of ROUNDS (untraced) per size and path")
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default=None)
    ap.add_argument("--postgres-url", default=os.environ.get("TICKETFLOW_DATABASE_URL", ""))
    args = ap.parse_args(argv)
    pg = args.postgres_url if args.postgres_url and not is_sqlite(args.postgres_url) else ""
    backend = args.backend or ("both" if pg else "sqlite")
    if backend != "sqlite" and not pg:
        ap.error("PostgreSQL needs TICKETFLOW_DATABASE_URL (or --postgres-url) to be a PostgreSQL URL")
    print(f"export benchmark: {args.rows:,} and {args.small:,} statements, best of {args.rounds} rounds")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    results = []
    if backend in ("sqlite", "both"):
        results.append(_print("SQLite", args.rows, args.small, _on_sqlite(args.rows, args.small, args.rounds)))
    if backend in ("postgresql", "both"):
        results.append(
            _print("PostgreSQL", args.rows, args.small, _on_postgres(pg, args.rows, args.small, args.rounds))
        )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
