"""Demo data for ``make run``: two regions, a handful of actors, one ticket type.

``python -m models.demo`` is idempotent: rows are inserted or brought back to these values.
Every demo actor's API key is ``demo-<actor id>``.
"""

import asyncio
import hashlib

from models.db import Database
from models.settings import get_settings
from models.tables import Actor, Region, TicketType

REGIONS = [
    Region(code="east", name="East China (Shanghai)", timezone="Asia/Shanghai"),
    Region(code="south", name="South China (Shenzhen)", timezone="Asia/Shanghai"),
]

_ACTORS = [
    ("admin", "Ops Admin", ["admin"], ["*"]),
    ("agent-wang", "Wang Fang (agent, east)", ["agent"], ["east"]),
    ("agent-chen", "Chen Jie (agent, south)", ["agent"], ["south"]),
    ("eng-li", "Li Wei (engineer, east)", ["engineer"], ["east"]),
    ("eng-zhao", "Zhao Lei (engineer, east)", ["engineer"], ["east"]),
    ("eng-huang", "Huang Min (engineer, south)", ["engineer"], ["south"]),
    ("sup-zhou", "Zhou Qiang (supervisor, east)", ["supervisor"], ["east"]),
]


def demo_api_key(actor_id: str) -> str:
    return f"demo-{actor_id}"


ACTORS = [
    Actor(
        id=i,
        name=n,
        roles=r,
        regions=g,
        api_key_hash=hashlib.sha256(demo_api_key(i).encode()).hexdigest(),
    )
    for i, n, r, g in _ACTORS
]

TICKET_TYPES = [
    TicketType(
        code="repair",
        name="Equipment repair",
        description="A machine is broken or misbehaving; an engineer fixes it on site.",
        default_priority="normal",
    ),
]


async def load(db: Database) -> None:
    async with db.session() as session:
        for row in [*REGIONS, *ACTORS, *TICKET_TYPES]:
            await session.merge(row.model_copy())
        await session.commit()


async def _main() -> None:
    db = Database(get_settings().database_url)
    await load(db)
    await db.dispose()
    print(f"demo data loaded: {len(REGIONS)} regions, {len(ACTORS)} actors, {len(TICKET_TYPES)} ticket type(s)")


if __name__ == "__main__":
    asyncio.run(_main())
