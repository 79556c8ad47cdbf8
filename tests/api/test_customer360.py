"""The customer 360 (``GET /customers/{id}/360``, ``api.services.customer360``) over HTTP against
the real app and database: what it shows across merged records, what it leaves out (other
regions, the ticket it is shown with), who may read it — and that reading it is a fixed number of
SQL statements, whether the customer has one asset or thirty assets, fifty tickets, twenty
orders and merged records (counted with a ``before_cursor_execute`` listener on the engine).
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

import store.customers
from api.services import customer360
from models.customer_tables import CustomerIdentity
from models.db import Database
from models.tables import Ticket
from models.ticket import ActorRef
from store import customer360 as batch
from tests.api.test_assets import TODAY, World, open_world

pytestmark = pytest.mark.asyncio

AGENT_EAST = ActorRef(id="agent-wang", name="Wang Fang", roles=["agent"], regions=["east"])
AGENT_SOUTH = ActorRef(id="agent-chen", name="Chen Jie", roles=["agent"], regions=["south"])
GATEWAY = ActorRef(id="gateway-qr", name="QR gateway", roles=["channel"], regions=["*"])


@pytest.fixture
async def world(db: Database, database_url: str) -> AsyncIterator[World]:
    async with open_world(db, database_url) as w:
        yield w


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` meanwhile."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)


async def identity(db: Database, customer_id: str, kind: str, value: str) -> None:
    async with db.session() as s:
        s.add(CustomerIdentity(customer_id=customer_id, kind=kind, value=value, created_at=datetime.now(UTC)))
        await s.commit()


async def small_customer(world: World) -> str:
    cus = await world.customer(member_level="silver")
    asset = await world.asset(cus, warranty_end=str(TODAY + timedelta(days=100)))
    await world.ticket(cus, asset["id"], satisfaction=4)
    await world.order(cus, datetime.now(UTC))
    await world.contract(cus, asset_id=asset["id"], covers_parts=True)
    return cus


@dataclass
class Big:
    """A customer with two merged records (one merged into the other first: a chain), thirty
    assets, fifty tickets, twenty orders, contracts and referrals."""

    family: list[str]  # the survivor first
    tier: str
    assets: list[dict[str, Any]] = field(default_factory=list)
    wide: dict[str, Any] = field(default_factory=dict)  # the customer-wide contract
    specific: dict[str, dict[str, Any]] = field(default_factory=dict)  # asset id → its own contract
    tickets: list[tuple[datetime, str, int | None]] = field(default_factory=list)  # (created, id, rating)
    orders: list[tuple[datetime, str]] = field(default_factory=list)  # (placed, external ref)


async def big_customer(world: World) -> Big:
    cus = await world.customer(
        kind="company", member_level="gold", consent={"sms": True, "wechat": False}, name="Big Co"
    )
    middle = await world.customer(merged_into=cus)
    oldest = await world.customer(merged_into=middle)  # a chain: oldest → middle → cus
    big = Big(family=[cus, middle, oldest], tier=await world.tier(response_minutes=30, resolution_minutes=240))
    await identity(world.db, cus, "phone", f"+86138{int(world.suffix, 16) % 10**8:08d}")
    await identity(world.db, oldest, "email", f"old-{world.suffix.lower()}@example.com")
    for _ in range(3):
        await world.customer(referred_by=middle)
    for i in range(30):
        days = 190 - 20 * i  # the first ten in warranty, then expired
        big.assets.append(await world.asset(big.family[i % 3], warranty_end=str(TODAY + timedelta(days=days))))
    # A customer-wide labour contract on a merged record; labour and parts with a tier on ten assets.
    big.wide = await world.contract(oldest, covers_labour=True)
    for a in big.assets[:10]:
        big.specific[a["id"]] = await world.contract(
            cus, asset_id=a["id"], covers_labour=True, covers_parts=True, sla_tier=big.tier
        )
    start = datetime.now(UTC) - timedelta(days=60)
    for i in range(50):
        at = start + timedelta(hours=5 * i)
        rating = (i % 5) + 1 if i % 2 == 0 else None
        tid = await world.ticket(big.family[i % 3], big.assets[i % 30]["id"], at=at, satisfaction=rating)
        big.tickets.append((at, tid, rating))
    for i in range(20):
        at = start + timedelta(days=i)
        big.orders.append((at, await world.order(big.family[i % 3], at, amount=f"{100 + i}.50")))
    return big


async def test_the_360_reads_in_the_same_few_statements_for_one_asset_or_thirty(world: World):
    small = await small_customer(world)
    large = (await big_customer(world)).family[0]
    engine = world.app.state.db.engine
    counts = {}
    for name, cus in (("1 asset", small), ("30 assets, 50 tickets, 20 orders, 3 records", large)):
        await world.get(f"/customers/{cus}/360")  # warm: the first request may open a connection
        with counting(engine) as statements:
            r = await world.get(f"/customers/{cus}/360")
        assert r.status_code == 200, r.text
        counts[name] = len(statements)
        async with world.db.session() as s:
            with counting(world.db.engine) as direct:
                await customer360.build(s, AGENT_EAST, cus)
        assert len(direct) == customer360.STATEMENTS, direct
        print(
            f"customer 360 of a customer with {name}: {counts[name]} statements per request, {len(direct)} in build()"
        )
    assert len(set(counts.values())) == 1, counts
    assert next(iter(counts.values())) <= customer360.STATEMENTS + 2  # + the API key look-up


async def test_the_360_shows_the_whole_merge_family(world: World):
    big = await big_customer(world)
    cus, family = big.family[0], big.family
    r = await world.get(f"/customers/{cus}/360")
    assert r.status_code == 200, r.text
    view = r.json()

    card = view["customer"]
    assert (card["id"], card["name"], card["kind"], card["region"], card["member_level"]) == (
        cus,
        "Big Co",
        "company",
        "east",
        "gold",
    )
    assert card["consent"] == {"sms": True, "wechat": False}
    assert card["referral_count"] == 3 and sorted(card["merged_records"]) == sorted(family[1:])
    assert {(i["kind"], i["customer_id"]) for i in view["identities"]} == {("phone", cus), ("email", family[2])}

    newest = sorted(big.tickets, key=lambda t: t[0], reverse=True)
    assert [t["id"] for t in view["tickets"]] == [tid for _, tid, _ in newest[:20]]
    assert all(t["closed_at"] is not None and t["status"] == "closed" for t in view["tickets"])
    ratings = [rating for _, _, rating in big.tickets if rating is not None]
    mean = (Decimal(sum(ratings)) / len(ratings)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert view["satisfaction"]["count"] == len(ratings) == 25
    assert view["satisfaction"]["average"] == str(mean)
    rated = [(tid, rating) for _, tid, rating in newest if rating is not None]
    assert [(x["ticket_id"], x["rating"]) for x in view["satisfaction"]["latest"]] == rated[:5]

    assert [o["external_ref"] for o in view["orders"]] == [ref for _, ref in sorted(big.orders, reverse=True)[:10]]
    assert view["orders"][0]["amount"] == "119.5000" and view["orders"][0]["currency"] == "CNY"

    assets = {a["id"]: a for a in view["assets"]}
    assert len(assets) == 30 and view["more_assets"] is False
    for i, a in enumerate(big.assets):
        shown = assets[a["id"]]
        assert shown["warranty"]["in_warranty"] is (i < 10), (i, shown)
        specific = big.specific.get(a["id"])
        expected = specific or big.wide
        assert shown["contract"]["number"] == expected["number"]
        assert shown["contract"]["sla_tier"] == (big.tier if specific else None)
        assert shown["contract"]["response_minutes"] == (30 if specific else None)
        assert shown["contract"]["coverage"] == ("labour_and_parts" if specific else "labour")
    assert [c["number"] for c in view["contracts"]] == [big.wide["number"]]

    # A merged record's id shows the survivor's 360; the merge walk agrees with store.customers.
    assert (await world.get(f"/customers/{family[2]}/360")).json() == view
    async with world.db.session() as s:
        for member in family:
            assert (await batch.survivors(s, [member]))[member][0].id == (await store.customers.get(s, member)).id  # type: ignore[union-attr]
        assert sorted((await batch.families(s, [cus]))[cus]) == sorted(await store.customers.family(s, cus))


async def test_the_360_keeps_to_the_callers_regions(world: World):
    cus = await world.customer()
    east = await world.ticket(cus, at=datetime.now(UTC) - timedelta(days=1), satisfaction=2)
    south = await world.ticket(cus, region="south", satisfaction=5)
    south_asset = await world.asset(cus, actor="admin", region="south")

    view = (await world.get(f"/customers/{cus}/360")).json()
    assert [t["id"] for t in view["tickets"]] == [east]
    assert view["satisfaction"]["count"] == 1 and view["satisfaction"]["average"] == "2.00"
    assert view["assets"] == []
    everything = (await world.get(f"/customers/{cus}/360", "admin")).json()
    assert [t["id"] for t in everything["tickets"]] == [south, east]
    assert [a["id"] for a in everything["assets"]] == [south_asset["id"]]

    assert (await world.get(f"/customers/{cus}/360", "agent-chen")).status_code == 404
    assert (await world.get(f"/customers/{cus}/360", "gateway-qr")).status_code == 403
    assert (await world.get("/customers/cus_nobody/360", "admin")).status_code == 404
    assert (await world.get("/customers/" + "x" * 33 + "/360", "admin")).status_code == 422


async def test_for_ticket_leaves_the_ticket_out_and_answers_none_when_it_may_not_show(world: World):
    cus = await world.customer()
    older = await world.ticket(cus, at=datetime.now(UTC) - timedelta(days=3), satisfaction=3)
    current = await world.ticket(cus, satisfaction=1, status="resolved")
    orphan = await world.ticket(None)
    async with world.db.session() as s:
        row, bare = await s.get(Ticket, current), await s.get(Ticket, orphan)
        assert row is not None and bare is not None
        view = await customer360.for_ticket(s, AGENT_EAST, row)
        assert view is not None and [t["id"] for t in view.model_dump()["tickets"]] == [older]
        assert view.satisfaction.count == 1  # the current ticket's rating is not "past"
        assert await customer360.for_ticket(s, AGENT_EAST, bare) is None
        assert await customer360.for_ticket(s, GATEWAY, row) is None
        assert await customer360.for_ticket(s, AGENT_SOUTH, row) is None
        with pytest.raises(Exception, match="not found"):
            await customer360.build(s, AGENT_SOUTH, cus)
    assert (await world.get(f"/customers/{cus}/360")).json()["tickets"][0]["id"] == current
