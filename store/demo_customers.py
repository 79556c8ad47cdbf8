"""The demo loader's customer rows (``make run``, never production): SLA tiers, customers, their
identities, assets, service contracts, orders and exchange rates from ``models/demo_customers.py``.

Idempotent and quick: one transaction of batched ``INSERT … ON CONFLICT DO NOTHING``
statements, so loading again inserts nothing, never duplicates a row and never undoes an edit
made since (a demo customer changed or merged through the API stays as it is).
"""

import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel, col, select

from domain.identities import normalize
from models.customer_tables import (
    Asset,
    Customer,
    CustomerIdentity,
    CustomerOrder,
    ExchangeRateRow,
    ServiceContract,
    SlaTier,
)
from models.db import Database, upsert_statement
from models.demo_customers import demo_customers


async def _insert(conn: AsyncConnection, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> None:
    """One ``executemany`` per table (SQLAlchemy batches it into multi-row statements)."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    await conn.execute(upsert_statement(conn.dialect.name, table).on_conflict_do_nothing(), list(rows))


def _rows(items: Iterable[SQLModel], *exclude: str) -> list[dict[str, Any]]:
    return [item.model_dump(exclude=set(exclude)) for item in items]


async def _present(conn: AsyncConnection, query: Any, wanted: Iterable[tuple[Any, ...]]) -> int:
    """How many of the ``wanted`` keys the query finds."""
    found = {tuple(row) for row in (await conn.execute(query)).all()}
    return len(found & set(wanted))


async def load_customers(db: Database) -> dict[str, int]:
    """Insert the demo customer data that is not there yet; the number of demo rows of each table
    now in the database (the same on every load). Needs the demo regions (``load_people``) first."""
    started = time.perf_counter()
    data = demo_customers()
    identities = _rows(data.identities, "id")
    for row in identities:  # the stored form is the normal one (a no-op on the demo's values)
        row["value"] = normalize(row["kind"], row["value"])
    async with db.session() as session:
        conn = await session.connection()
        await _insert(conn, SlaTier, _rows(data.tiers))
        await _insert(conn, Customer, _rows(data.customers))
        await _insert(conn, CustomerIdentity, identities)
        await _insert(conn, Asset, _rows(data.assets))
        await _insert(conn, ServiceContract, _rows(data.contracts))
        await _insert(conn, CustomerOrder, _rows(data.orders, "id"))
        await _insert(conn, ExchangeRateRow, _rows(data.rates, "id"))
        counts = {
            "sla tiers": await _present(conn, select(SlaTier.code), [(t.code,) for t in data.tiers]),
            "customers": await _present(
                conn, select(Customer.id).where(_demo(Customer.id, "cus")), [(c.id,) for c in data.customers]
            ),
            "identities": await _present(
                conn,
                select(CustomerIdentity.kind, CustomerIdentity.value).where(_demo(CustomerIdentity.customer_id, "cus")),
                [(row["kind"], row["value"]) for row in identities],
            ),
            "assets": await _present(
                conn, select(Asset.id).where(_demo(Asset.id, "ast")), [(a.id,) for a in data.assets]
            ),
            "contracts": await _present(
                conn,
                select(ServiceContract.id).where(_demo(ServiceContract.id, "ctr")),
                [(c.id,) for c in data.contracts],
            ),
            "orders": await _present(
                conn,
                select(CustomerOrder.source, CustomerOrder.external_ref).where(_demo(CustomerOrder.customer_id, "cus")),
                [(o.source, o.external_ref) for o in data.orders],
            ),
            "exchange rates": await _present(
                conn,
                select(ExchangeRateRow.base, ExchangeRateRow.quote, ExchangeRateRow.as_of).where(
                    ExchangeRateRow.source == "demo"
                ),
                [(r.base, r.quote, r.as_of) for r in data.rates],
            ),
        }
        await session.commit()
    took = time.perf_counter() - started
    print("demo customers: " + ", ".join(f"{n} {table}" for table, n in counts.items()) + f" in {took:.2f} s")
    return counts


def _demo(column: str, prefix: str) -> Any:
    """The demo's rows: ids ``cus_demo…``, ``ast_demo…``, ``ctr_demo…``."""
    return col(column).like(f"{prefix}\\_demo%", escape="\\")
