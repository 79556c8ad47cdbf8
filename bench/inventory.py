"""Stock reservations under contention on PostgreSQL, against the bare conditional UPDATE.

    .venv/bin/python bench/inventory.py [--reservations 2000] [--workers 32] [--skus 4] [--stock 1200] [--rounds 3]

In a throw-away schema (dropped at the end) of TICKETFLOW_TEST_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test): one warehouse, ``--skus`` hot parts holding
``--stock`` units between them, and ``--reservations`` single-unit requests spread over the parts,
driven by ``--workers`` concurrent workers (each its own pooled connection and transaction).

- **ledger**: ``store.inventory.reserve`` — the ticket lock, the idempotency read, the
  candidate read, the conditional UPDATE, the ledger row and the alert check in one transaction;
- **baseline**: the bare ``UPDATE stock_level SET reserved = reserved + 1 WHERE … AND
  on_hand - reserved >= 1`` in its own transaction, nothing else.

Two scenarios, each run for both paths, rounds alternating: **shortage** (``--stock`` units for the
requests: the rest take the insufficient-stock path) and **all_succeed** (stock for every request).
Each round uses fresh parts. After every round it checks zero oversell (``0 <= reserved <= on_hand``),
that reserved == the number of reservations that succeeded (== the reservation rows in the ledger),
and that exactly min(requests, stock) succeeded. Prints requests per second (best round; insufficient
answers count as requests handled), the ratio ledger/baseline, and p50/p99 latency per request.

By default each worker has its own pooled connection without pre-ping, so the figures are the
database path; ``--project-engine`` uses ``models.db.Database``'s engine unchanged.
"""

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from models.db import Database, async_url, sync_url  # noqa: E402
from models.inventory import Location, PartLine, ReservationStatus, ReserveInput  # noqa: E402
from models.inventory_tables import Part, StockLevel, StockMovement, Warehouse  # noqa: E402
from models.tables import Region  # noqa: E402
from store import inventory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REGION, WAREHOUSE = "bench", "WH-BENCH"
SITE = Location(lat=31.2040, lon=121.5900)
_LEVEL, _MOVE = StockLevel.__table__, StockMovement.__table__
BARE_UPDATE = sa.text(
    "UPDATE stock_level SET reserved = reserved + 1 WHERE warehouse = :w AND sku = :s AND on_hand - reserved >= 1"
)


def _schema_url(base: str, schema: str) -> str:
    u = make_url(sync_url(base))
    return u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _dsn(url: str) -> str:
    return make_url(sync_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] * 1000


async def _stock_parts(db: Database, skus: list[str], stock: int) -> None:
    """New parts with ``stock`` units between them, received through the ledger."""
    async with db.engine.begin() as conn:
        await conn.execute(
            Part.__table__.insert(),
            [
                {
                    "sku": s,
                    "name": s,
                    "unit": "pcs",
                    "unit_price": 1,
                    "currency": "CNY",
                    "reorder_point": 20,
                    "reorder_qty": 100,
                }
                for s in skus
            ],
        )
        for i, sku in enumerate(skus):
            qty = stock // len(skus) + (1 if i < stock % len(skus) else 0)
            if qty:
                await inventory.receive(
                    conn, key=f"bench:{sku}", warehouse=WAREHOUSE, sku=sku, quantity=qty, actor_id="bench"
                )


async def _drive(n: int, workers: int, one) -> tuple[float, list[Any], list[float]]:
    """Run ``one(i)`` for i in 0..n-1 from ``workers`` concurrent workers; (seconds, results, latencies)."""
    next_i = iter(range(n))
    results: list[Any] = [None] * n
    latencies: list[float] = []

    async def worker() -> None:
        for i in next_i:
            t0 = time.perf_counter()
            results[i] = await one(i)
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(workers)])
    return time.perf_counter() - t0, results, latencies


async def _levels(db: Database, skus: list[str]) -> dict[str, tuple[int, int]]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(_LEVEL.c.sku, _LEVEL.c.on_hand, _LEVEL.c.reserved).where(_LEVEL.c.sku.in_(skus))
        )
        return {r.sku: (r.on_hand, r.reserved) for r in rows}


async def _ledger_round(db: Database, n: int, workers: int, skus: list[str]) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]

    async def one(i: int) -> ReservationStatus:
        inp = ReserveInput(
            ticket_id=f"B{run}{i:06d}",
            node_id="reserve_parts",
            region=REGION,
            location=SITE,
            lines=[PartLine(sku=skus[i % len(skus)], quantity=1)],
        )
        return (await inventory.reserve(db, inp)).status

    seconds, statuses, lat = await _drive(n, workers, one)
    ok = statuses.count(ReservationStatus.RESERVED)
    async with db.engine.connect() as conn:
        ledger_rows = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(_MOVE)
                .where(_MOVE.c.sku.in_(skus), _MOVE.c.kind == "reservation")
            )
        ).scalar_one()
    return {
        "seconds": seconds,
        "rate": n / seconds,
        "reserved": ok,
        "reserved_rate": ok / seconds,
        "insufficient": statuses.count(ReservationStatus.INSUFFICIENT),
        "ledger_rows": ledger_rows,
        "levels": await _levels(db, skus),
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "mean_ms": statistics.mean(lat) * 1000,
    }


async def _baseline_round(db: Database, n: int, workers: int, skus: list[str]) -> dict[str, Any]:
    async def one(i: int) -> int:
        async with db.engine.begin() as conn:
            return (await conn.execute(BARE_UPDATE, {"w": WAREHOUSE, "s": skus[i % len(skus)]})).rowcount

    seconds, counts, lat = await _drive(n, workers, one)
    ok = sum(counts)
    return {
        "seconds": seconds,
        "rate": n / seconds,
        "reserved": ok,
        "reserved_rate": ok / seconds,
        "insufficient": n - ok,
        "levels": await _levels(db, skus),
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "mean_ms": statistics.mean(lat) * 1000,
    }


def _check(kind: str, r: dict[str, Any], n: int, stock: int) -> list[str]:
    problems = []
    reserved = sum(res for _, res in r["levels"].values())
    if any(not 0 <= res <= on for on, res in r["levels"].values()):
        problems.append(f"{kind}: oversell {r['levels']}")
    if reserved != r["reserved"]:
        problems.append(f"{kind}: {r['reserved']} succeeded but {reserved} reserved")
    if r["reserved"] != min(n, stock):
        problems.append(f"{kind}: {r['reserved']} succeeded, expected {min(n, stock)}")
    if "ledger_rows" in r and r["ledger_rows"] != reserved:
        problems.append(f"{kind}: {r['ledger_rows']} ledger rows for {reserved} reserved")
    return problems


async def _run(
    url: str, reservations: int, workers: int, skus: int, stock: int, rounds: int, project_engine: bool
) -> dict[str, Any]:
    db = Database(url)
    if not project_engine:  # a pooled connection per worker, no pre-ping: the database path alone
        await db.engine.dispose()
        db.engine = create_async_engine(async_url(url), pool_size=workers, max_overflow=0)
    scenarios = {"shortage": stock, "all_succeed": reservations}
    try:
        async with db.session() as s:
            s.add(Region(code=REGION, name="Benchmark"))
            await s.flush()
            s.add(
                Warehouse(code=WAREHOUSE, name="Benchmark", region=REGION, kind="regional", lat=31.2215, lon=121.5440)
            )
            await s.commit()
        warm = [f"WARM-{i}" for i in range(skus)]
        await _stock_parts(db, warm, 10 * workers)
        await _ledger_round(db, 10 * workers, workers, warm)
        await _baseline_round(db, 10 * workers, workers, warm)

        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        problems: list[str] = []
        for r in range(rounds):  # alternate, so machine noise hits both alike
            for scenario, units in scenarios.items():
                for kind, round_fn in (("baseline", _baseline_round), ("ledger", _ledger_round)):
                    parts = [f"HOT-{scenario}-{kind}-{r}-{i}" for i in range(skus)]
                    await _stock_parts(db, parts, units)
                    res = await round_fn(db, reservations, workers, parts)
                    problems += [f"{scenario} {p}" for p in _check(kind, res, reservations, units)]
                    runs.setdefault((scenario, kind), []).append(res)
    finally:
        await db.dispose()
    out: dict[str, Any] = {
        "reservations": reservations,
        "workers": workers,
        "skus": skus,
        "rounds": rounds,
        "project_engine": project_engine,
        "zero_oversell": not problems,
        "problems": problems,
    }
    for scenario, units in scenarios.items():
        best = {k: max(runs[(scenario, k)], key=lambda x: x["rate"]) for k in ("ledger", "baseline")}
        out[scenario] = {
            "stock": units,
            **best,
            "ledger_rates": [x["rate"] for x in runs[(scenario, "ledger")]],
            "baseline_rates": [x["rate"] for x in runs[(scenario, "baseline")]],
            "ratio": best["ledger"]["rate"] / best["baseline"]["rate"],
        }
    return out


def inventory_benchmark(
    url: str | None = None,
    reservations: int = 2000,
    workers: int = 32,
    skus: int = 4,
    stock: int = 1200,
    rounds: int = 3,
    project_engine: bool = False,
) -> dict[str, Any]:
    """Run the benchmark in a throw-away schema of ``url`` (PostgreSQL) and return the figures:
    ``shortage`` (``stock`` units for ``reservations`` requests) and ``all_succeed`` (enough stock),
    each with the best ``ledger`` and ``baseline`` round (requests/s as ``rate``) and their ``ratio``."""
    base = url or os.environ.get("TICKETFLOW_TEST_DATABASE_URL") or DEFAULT_URL
    if not make_url(base).drivername.startswith("postgresql"):
        raise SystemExit(f"the inventory benchmark needs PostgreSQL, not {base}")
    schema = f"tf_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_dsn(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        schema_url = _schema_url(base, schema)
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes.update(url=schema_url, configure_logger=False)
        command.upgrade(cfg, "heads")
        return asyncio.run(_run(schema_url, reservations, workers, skus, stock, rounds, project_engine))
    finally:
        with psycopg.connect(_dsn(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reservations", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--skus", type=int, default=4)
    ap.add_argument("--stock", type=int, default=1200, help="units across the hot parts (fewer than requests)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--project-engine",
        action="store_true",
        help="use models.db.Database's engine as configured (pool 10+20, pre-ping)",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    r = inventory_benchmark(
        None, args.reservations, args.workers, args.skus, args.stock, args.rounds, args.project_engine
    )
    engine = "models.db engine (pool 10+20, pre-ping)" if r["project_engine"] else "a connection per worker"
    print(
        f"inventory: {r['reservations']} single-unit reservations over {r['skus']} hot parts, "
        f"{r['workers']} workers, {engine}, best of {r['rounds']} rounds, PostgreSQL"
    )
    for scenario, title in (("shortage", "stock for only part of them"), ("all_succeed", "stock for all")):
        sc = r[scenario]
        print(f"  {sc['stock']} units in stock ({title}):")
        for kind in ("baseline", "ledger"):
            x = sc[kind]
            rates = ", ".join(f"{v:.0f}" for v in sc[f"{kind}_rates"])
            print(
                f"    {kind:8s} {x['rate']:6.0f} reservations/s (rounds: {rates})  {x['reserved']} reserved, "
                f"{x['insufficient']} insufficient  p50 {x['p50_ms']:.1f} ms  p99 {x['p99_ms']:.1f} ms"
            )
        print(f"    ratio ledger/baseline = {sc['ratio']:.2f}")
    print(f"  zero oversell, reserved == successes == ledger rows: {'yes' if r['zero_oversell'] else 'NO'}")
    for p in r["problems"]:
        print(f"    {p}")
    slowest = min(r[s]["ledger"]["rate"] for s in ("shortage", "all_succeed"))
    goal = slowest >= 1000 and r["zero_oversell"]
    print(
        f"  goal >= 1,000 reservations/s under contention with zero oversell: {'met' if goal else 'NOT met'}"
        f" (slowest scenario {slowest:.0f}/s; {time.perf_counter() - t0:.0f} s)"
    )
    if not r["zero_oversell"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
