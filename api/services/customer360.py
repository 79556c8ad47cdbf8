"""The customer 360: who the customer is, how to reach them, what they own and what covers it,
what they bought, their previous tickets and how they rated them — across every record merged
into them, and only what lies in the caller's regions (tickets and assets of other regions are
left out; a customer outside them is ``NotFound``).

Reading it takes ``STATEMENTS`` SQL statements whatever the customer's size: each part is one
bounded query over the whole merge family (``store/customer360.py``), never a query per
ticket, asset or contract. ``tests/api/test_customer360.py`` counts them.
"""

from decimal import ROUND_HALF_UP, Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

import store.assets
import store.customers
from api.errors import Forbidden, NotFound
from api.services.assets import contract_status, today_in, warranty
from domain.access import can_access_region, visible_regions
from domain.roles import is_machine
from models.assets_http import (
    AssetCard,
    Customer360,
    CustomerCard,
    IdentityOut,
    OrderOut,
    PastTicket,
    Rating,
    SatisfactionOut,
)
from models.tables import Ticket
from models.ticket import ActorRef
from store import customer360 as q

TICKETS = 20  # previous tickets shown
ORDERS = 10  # recent orders shown
RATINGS = 5  # latest ratings shown
ASSETS = 50  # assets shown (more: GET /assets?customer_id=)
IDENTITIES = 50  # contact identities shown
# survivor, family, identities, referrals, tickets, satisfaction, ratings, assets, contracts, orders
STATEMENTS = 10


async def build(
    session: AsyncSession, actor: ActorRef, customer_id: str, *, exclude_ticket: str | None = None
) -> Customer360:
    """The 360 of ``customer_id`` (or the customer it was merged into). ``exclude_ticket``: a
    ticket left out of the history and the ratings (the one being shown with it)."""
    if is_machine(actor.roles):
        raise Forbidden(f"{actor.id!r} is a channel account: it reads no customer records")
    found = (await q.survivors(session, [customer_id])).get(customer_id)
    if found is None or not can_access_region(actor, found[0].region):
        raise NotFound(f"customer {customer_id} not found")
    customer, timezone = found
    family = (await q.families(session, [customer.id]))[customer.id]
    regions = visible_regions(actor)

    identities = await q.identities(session, family, IDENTITIES)
    referrals = await store.customers.referral_count(session, family)
    tickets = await q.tickets(session, family, regions, exclude_ticket, TICKETS)
    rated, mean = await q.satisfaction(session, family, regions, exclude_ticket)
    ratings = await q.latest_ratings(session, family, regions, exclude_ticket, RATINGS)
    assets = await q.assets(session, family, regions, ASSETS + 1)
    shown = assets[:ASSETS]
    today = today_in(timezone)
    days = {a.id: today_in(tz) for a, tz in shown}
    contracts = await store.assets.contracts_covering(
        session, family, list(days), min([today, *days.values()]), max([today, *days.values()])
    )
    orders = await q.orders(session, family, ORDERS)

    cards = []
    for a, _ in shown:
        picked = store.assets.covering(contracts, family, a.id, days[a.id])
        cards.append(
            AssetCard(
                id=a.id,
                serial=a.serial,
                model=a.model,
                region=a.region,
                site_address=a.site_address,
                warranty=warranty(a, days[a.id]),
                contract=contract_status(*picked) if picked else None,
            )
        )
    wide = sorted(
        ((c, t) for c, t in contracts if c.asset_id is None and c.valid_from <= today <= c.valid_to),
        key=lambda ct: (ct[0].covers_labour + ct[0].covers_parts, ct[0].valid_to, ct[0].id),
        reverse=True,
    )
    return Customer360(
        customer=CustomerCard(
            id=customer.id,
            name=customer.name,
            kind=customer.kind,
            region=customer.region,
            member_level=customer.member_level,
            referral_code=customer.referral_code,
            referred_by=customer.referred_by,
            referral_count=referrals,
            consent=dict(customer.consent or {}),
            merged_records=[i for i in family if i != customer.id],
        ),
        identities=[IdentityOut.model_validate(i, from_attributes=True) for i in identities],
        tickets=[PastTicket.model_validate(t, from_attributes=True) for t in tickets],
        assets=cards,
        more_assets=len(assets) > ASSETS,
        contracts=[s for c, t in wide if (s := contract_status(c, t)) is not None],
        orders=[OrderOut.model_validate(o, from_attributes=True) for o in orders],
        satisfaction=SatisfactionOut(
            count=rated,
            average=None if mean is None else mean.quantize(Decimal("0.01"), ROUND_HALF_UP),
            latest=[Rating(ticket_id=i, rating=r, at=at) for i, r, at in ratings],
        ),
    )


async def for_ticket(session: AsyncSession, actor: ActorRef, ticket_row: Ticket) -> Customer360 | None:
    """The 360 of a ticket's customer, without that ticket in its history; None when the ticket
    names no customer, the caller is a channel account, or the customer lies outside the caller's
    regions (the ticket itself is visible: its region is)."""
    if ticket_row.customer_id is None or is_machine(actor.roles):
        return None
    try:
        return await build(session, actor, ticket_row.customer_id, exclude_ticket=ticket_row.id)
    except NotFound:
        return None
