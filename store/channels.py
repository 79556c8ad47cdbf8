"""Inbound channels: every query on ``channel`` and ``channel_delivery``, the open tickets a
channel raised for a customer, and the customer record a channel creates for a sender it does
not know. Nothing here commits: the caller's transaction does (``api/services/channels.py``)."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.channel_tables import ChannelDelivery, InboundChannel
from models.customer_tables import Customer, CustomerIdentity
from models.tables import Ticket

# --- the registry ---


async def get(session: AsyncSession, code: str, *, lock: bool = False) -> InboundChannel | None:
    """``lock``: the row stays locked until the caller's transaction ends (PostgreSQL)."""
    if not lock:
        return await session.get(InboundChannel, code)
    return (await session.exec(select(InboundChannel).where(InboundChannel.code == code).with_for_update())).first()


async def all_channels(session: AsyncSession) -> list[InboundChannel]:
    return list((await session.exec(select(InboundChannel).order_by(col(InboundChannel.code)))).all())


def save(session: AsyncSession, row: InboundChannel | ChannelDelivery) -> None:
    session.add(row)


# --- deliveries ---


async def delivery(session: AsyncSession, channel: str, delivery_id: str) -> ChannelDelivery | None:
    q = select(ChannelDelivery).where(ChannelDelivery.channel == channel, ChannelDelivery.delivery_id == delivery_id)
    return (await session.exec(q)).first()


async def forget(session: AsyncSession, row: ChannelDelivery) -> None:
    """A delivery whose plan was refused: it may come again and be decided afresh."""
    await session.delete(row)


async def open_tickets(
    session: AsyncSession, channel: str, customer_ids: Sequence[str], closed: Sequence[str]
) -> list[Ticket]:
    """The customer's tickets this channel created (a delivery of it did) that are not in a
    ``closed`` status, newest first."""
    if not customer_ids:
        return []
    q = (
        select(Ticket)
        .join(ChannelDelivery, col(ChannelDelivery.ticket_id) == col(Ticket.id))
        .where(
            ChannelDelivery.channel == channel,
            ChannelDelivery.outcome == "created",
            col(Ticket.customer_id).in_(customer_ids),
            col(Ticket.status).not_in(closed),
        )
        .order_by(col(Ticket.created_at).desc(), col(Ticket.id).desc())
    )
    return list((await session.exec(q)).all())


# --- customers a channel meets ---


async def add_customer(
    session: AsyncSession,
    *,
    customer_id: str,
    referral_code: str,
    name: str,
    region: str,
    identity: tuple[str, str, bool],
) -> Customer:
    """A new person known by one identity (kind, normalised value, verified), added to the
    caller's transaction (flushed: committing may still raise IntegrityError when another
    request added the same identity first — then resolve it again)."""
    now = datetime.now(UTC)
    customer = Customer(
        id=customer_id,
        kind="person",
        name=name[:200],
        region=region,
        referral_code=referral_code,
        created_at=now,
        updated_at=now,
    )
    session.add(customer)
    await session.flush()  # the customer row before the identity that points at it
    kind, value, verified = identity
    session.add(CustomerIdentity(customer_id=customer.id, kind=kind, value=value, verified=verified, created_at=now))
    await session.flush()
    return customer
