"""What one ``dispatch.decide`` activity costs, roster read included, against the scoring alone.

    .venv/bin/python bench/dispatch_activity.py [--sizes 100,1000,5000] [--decisions 50]

The activity reads the open-ticket loads on every call and the region's roster (people,
profiles, calendars → the scoring pool) when the roster revision moved or its cached pool is
older than ``ROSTER_TTL_S``.
For each roster size this times, on a fresh SQLite database migrated with Alembic and in
the same run: the activity with the roster cache cold (read + build every call, as before
the cache), the activity warm (the usual case), and ``decide`` alone on a prebuilt pool.
"""

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402

from activities import resources  # noqa: E402
from activities.dispatch import decide_assignee, forget_rosters, roster  # noqa: E402
from domain.dispatch import CandidatePool, decide  # noqa: E402
from models.db import Database  # noqa: E402
from models.dispatch import DispatchCall, DispatchRequest, GeoPoint  # noqa: E402
from models.tables import Actor, Ticket  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SKILLS = ["equipment_repair", "installation", "hvac", "electrical", "refrigeration", "network"]


async def staff(db: Database, n: int, rng: random.Random) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        for i in range(n):
            skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(2, 4))}
            session.add(
                Actor(
                    id=f"eng-{i:05d}",
                    name=f"Engineer {i}",
                    roles=["engineer"],
                    regions=["east"],
                    skills=skills,
                    home_lat=31.23 + rng.uniform(-0.3, 0.3),
                    home_lon=121.47 + rng.uniform(-0.3, 0.3),
                    capacity=rng.randint(3, 8),
                    seniority=rng.randint(1, 5),
                )  # fmt: skip
            )
        for i in range(n // 2):  # some open tickets: loads to count
            session.add(
                Ticket(
                    id=f"L{i:06d}",
                    ticket_type="x",
                    region="east",
                    priority="normal",
                    status="assigned",
                    assignee=f"eng-{rng.randrange(n):05d}",
                    title="load",
                    channel="agent",
                    created_by="bench",
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
            )
        await session.commit()


def request(rng: random.Random) -> DispatchRequest:
    return DispatchRequest(
        region="east",
        roles=["engineer"],
        required_skills={rng.choice(SKILLS): rng.randint(1, 3)},
        location=GeoPoint(lat=31.23 + rng.uniform(-0.2, 0.2), lon=121.47 + rng.uniform(-0.2, 0.2)),
        at=datetime.now(UTC),
    )


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


async def one_size(n: int, decisions: int) -> None:
    rng = random.Random(n)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.attributes["url"] = url
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        db = Database(url)
        resources.use_database(db)
        try:
            await staff(db, n, rng)
            people, calendars = await roster("east")
            pool = CandidatePool.build(people, calendars)
            requests = [request(rng) for _ in range(decisions)]
            cold_ms, warm_ms, scoring_ms = [], [], []
            for req in requests:  # interleaved, so noise hits all three alike
                forget_rosters()
                t = time.perf_counter()
                await decide_assignee(DispatchCall(request=req))
                cold_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await decide_assignee(DispatchCall(request=req))
                warm_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                decide(pool, req)
                scoring_ms.append((time.perf_counter() - t) * 1000)
        finally:
            resources.use_database(None)
            await db.dispose()
    c50, w50, w99 = statistics.median(cold_ms), statistics.median(warm_ms), pct(warm_ms, 0.99)
    s50 = statistics.median(scoring_ms)
    print(
        f"  {n:>6,} people: cold p50 {c50:7.2f} ms | warm p50 {w50:6.2f} ms p99 {w99:6.2f} ms"
        f" | scoring alone p50 {s50:5.2f} ms | warm/cold {w50 / c50:5.2f}, warm/scoring {w50 / s50:5.1f}×"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--decisions", type=int, default=50)
    args = parser.parse_args()
    print(f"dispatch.decide activity, roster cache cold vs warm, vs decide alone; SQLite, {args.decisions} decisions")
    for n in (int(s) for s in args.sizes.split(",")):
        await one_size(n, args.decisions)


if __name__ == "__main__":
    asyncio.run(main())
