"""Purchase requests: every query on ``purchase_request`` (raised by the worked-example activity
``purchasing.create_request``, one per ticket and SKU)."""

from datetime import UTC, datetime

from sqlmodel import select

from models.db import Database, upsert_statement
from models.tables import PurchaseRequest


async def request_once(db: Database, ticket_id: str, sku: str, quantity: int, reason: str) -> PurchaseRequest:
    """The ticket's request for ``sku``: created by the first call, the same row on every later one."""
    insert = upsert_statement(db.engine.dialect.name, PurchaseRequest.__table__).values(
        ticket_id=ticket_id,
        sku=sku,
        quantity=quantity,
        reason=reason,
        status="requested",
        created_at=datetime.now(UTC),
    )
    async with db.session() as session:
        await session.exec(insert.on_conflict_do_nothing(index_elements=["ticket_id", "sku"]))  # type: ignore[call-overload]
        await session.commit()
        return (
            await session.exec(
                select(PurchaseRequest).where(PurchaseRequest.ticket_id == ticket_id, PurchaseRequest.sku == sku)
            )
        ).one()
