"""The demo data loader's writes (``python -m api.demo``, run by ``make run``; never in
production): regions, people and their ``demo-<id>`` keys, parts, warehouses and stock, price
rules. Every load is idempotent. The data themselves are plain constants in ``models/demo.py``,
``models/inventory.py`` (``DEMO_PARTS``, ``DEMO_WAREHOUSES``, ``DEMO_STOCK``) and
``models/demo_pricing.py``; the preset templates are published through the templates service.
"""

from datetime import UTC, datetime

from sqlmodel import col, select

from models.db import Database, upsert_statement
from models.demo import ACTORS, REGIONS, demo_keys
from models.demo_pricing import DEMO_PRICING
from models.inventory import DEMO_PARTS, DEMO_STOCK, DEMO_WAREHOUSES, MovementKind
from models.inventory_tables import StockLevel, StockMovement
from models.settlement_tables import PriceRules
from models.tables import ApiKey
from store.people import bump_roster_revision


async def load_people(db: Database) -> None:
    """Regions, people and their ``demo-<id>`` keys (brought back to the demo's values: a demo
    key revoked or expired since works again)."""
    async with db.session() as session:
        for row in [*REGIONS, *ACTORS]:
            await session.merge(row.model_copy())
        await session.flush()
        table = ApiKey.__table__
        insert = upsert_statement(session.bind.dialect.name, table).values(demo_keys(datetime.now(UTC)))  # type: ignore[arg-type]
        await session.exec(
            insert.on_conflict_do_update(  # type: ignore[call-overload]
                index_elements=["key_hash"],
                set_={"actor_id": insert.excluded.actor_id, "expires_at": None, "revoked_at": None},
            )
        )
        await bump_roster_revision(session)
        await session.commit()


async def load_inventory(db: Database) -> None:
    """Parts and warehouses are inserted or brought back to the demo's values; each demo stock
    quantity is received once, as a ledger receipt (key ``demo:<warehouse>:<sku>``), so loading
    again adds nothing. Needs the demo regions (``load_people``) first."""
    now = datetime.now(UTC)
    async with db.session() as session:
        for row in [*DEMO_PARTS, *DEMO_WAREHOUSES]:
            await session.merge(row.model_copy())
        await session.flush()
        conn = await session.connection()
        dialect = conn.dialect.name
        level = StockLevel.__table__
        for warehouse, sku, qty in DEMO_STOCK:
            receipt = (
                upsert_statement(dialect, StockMovement.__table__)
                .values(
                    idempotency_key=f"demo:{warehouse}:{sku}",
                    kind=MovementKind.RECEIPT.value,
                    warehouse=warehouse,
                    sku=sku,
                    quantity=qty,
                    actor_id="demo",
                    at=now,
                    note="demo stock",
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(StockMovement.__table__.c.id)
            )
            if (await conn.execute(receipt)).first() is None:
                continue  # received on an earlier run
            add = upsert_statement(dialect, level).values(
                warehouse=warehouse, sku=sku, on_hand=qty, reserved=0, updated_at=now
            )
            add = add.on_conflict_do_update(
                index_elements=["warehouse", "sku"],
                set_={"on_hand": level.c.on_hand + add.excluded.on_hand, "updated_at": add.excluded.updated_at},
            )
            await conn.execute(add)
        await session.commit()


async def load_pricing(db: Database) -> list[tuple[str, str, bool]]:
    """Publish each region's demo rules as version ``DEMO_VERSION``, active when the region has no
    active rules yet or an older demo version (loading again never undoes a version finance
    published since);
    ``(region, version, active)`` per region. Needs the demo regions (``load_people``) first."""
    table = PriceRules.__table__
    loaded = []
    async with db.session() as session:
        for region, rules in DEMO_PRICING.items():
            active = (
                await session.exec(
                    select(PriceRules).where(PriceRules.region == region, col(PriceRules.active).is_(True))
                )
            ).first()
            # An older demo version (never one finance published) gives way to this one.
            superseded = active is not None and active.created_by == "demo" and active.version != rules.version
            if superseded and active is not None:
                active.active = False
                session.add(active)
                await session.flush()
            has_active = active is not None and not superseded
            insert = upsert_statement(db.engine.dialect.name, table).values(
                region=region,
                version=rules.version,
                rules=rules.model_dump(mode="json"),
                active=not has_active,
                created_by="demo",
                created_at=datetime.now(UTC),
            )
            await session.exec(insert.on_conflict_do_nothing(index_elements=["region", "version"]))  # type: ignore[call-overload]
            row = (
                await session.exec(
                    select(PriceRules).where(PriceRules.region == region, PriceRules.version == rules.version)
                )
            ).one()
            if not has_active and not row.active:  # it was there, inactive, when it superseded another
                row.active = True
                session.add(row)
                await session.flush()
            loaded.append((region, row.version, row.active))
        await session.commit()
    return loaded
