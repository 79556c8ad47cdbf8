"""Who a new ticket is for and what it is about: intake resolves the ``customer`` and ``asset``
a request names (``models.schemas.CustomerLookup`` / ``AssetLookup``) into records, the region
they give, the SLA tier of a valid service contract, and the form fields the template fills
from the asset (``TemplateSpec.from_asset``). See docs/customers.md.

Anything the caller may not see is reported exactly like something that does not exist (a
422 naming the field): intake never tells one region's caller about another region's customers.
"""

from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

import store.assets
import store.customers
from api.errors import FieldInvalid
from domain.access import can_access_region
from domain.identities import BadIdentity, normalize
from domain.roles import is_machine
from models.customer_tables import Asset, Customer
from models.schemas import TicketCreate
from models.template import TemplateSpec
from models.ticket import ActorRef, ContractSla

CUSTOMER_CHANNELS = frozenset({"qr", "bot", "app", "web"})  # where customers speak (not business systems)


@dataclass(frozen=True)
class Parties:
    customer: Customer | None = None
    family: list[str] = field(default_factory=list)  # the customer and the records merged into it
    asset: Asset | None = None

    @property
    def region(self) -> str | None:
        """The region the ticket belongs in when the request names none: the asset's, else the customer's."""
        if self.asset is not None:
            return self.asset.region
        return self.customer.region if self.customer is not None else None


async def resolve(session: AsyncSession, actor: ActorRef, body: TicketCreate) -> Parties:
    asset = await _asset(session, actor, body) if body.asset is not None else None
    customer = await _customer(session, actor, body) if body.customer is not None else None
    if customer is None and asset is not None:
        owner = await store.customers.get(session, asset.customer_id)
        # The machine's owner, if the caller may see them (else the ticket is about the asset only).
        customer = owner if owner is not None and can_access_region(actor, owner.region) else None
    if customer is None:
        return Parties(asset=asset)
    family = await store.customers.family(session, customer.id)
    if asset is not None and asset.customer_id not in family:
        raise FieldInvalid("asset", "this asset belongs to another customer", "asset_of_another_customer")
    return Parties(customer=customer, family=family, asset=asset)


async def _asset(session: AsyncSession, actor: ActorRef, body: TicketCreate) -> Asset:
    lookup = body.asset
    assert lookup is not None
    if is_machine(actor.roles) and body.channel.value in CUSTOMER_CHANNELS and not lookup.qr_code:
        # A customer channel speaks for whoever holds the machine: the code on its sticker, never a
        # serial or an id anyone could read off a plate or guess (business systems know serials).
        raise FieldInvalid("asset", "a customer channel names a machine by the code of its QR sticker", "unknown_asset")
    if lookup.id:
        asset = await store.assets.get(session, lookup.id)
    elif lookup.serial:
        asset = await store.assets.by_serial(session, lookup.serial)
    else:
        asset = await store.assets.by_qr(session, lookup.qr_code or "")
    if asset is None or not can_access_region(actor, asset.region):
        raise FieldInvalid("asset", "no such asset", "unknown_asset")
    return asset


async def _customer(session: AsyncSession, actor: ActorRef, body: TicketCreate) -> Customer:
    """The one customer every way the request names resolves to."""
    lookup = body.customer
    assert lookup is not None
    found: dict[str, Customer] = {}
    for kind, value in lookup.given():
        if kind == "id":
            customer = await store.customers.get(session, value)
        else:
            try:
                customer = await store.customers.resolve(session, kind, normalize(kind, value))
            except BadIdentity as exc:
                raise FieldInvalid(f"customer.{kind}", str(exc), "bad_identity") from None
        if customer is None or not can_access_region(actor, customer.region):
            raise FieldInvalid(f"customer.{kind}", f"no customer with this {kind}", "unknown_customer")
        found[customer.id] = customer
    if len(found) > 1:
        raise FieldInvalid("customer", "these identities belong to different customers", "ambiguous_customer")
    return next(iter(found.values()))


async def contract_sla(session: AsyncSession, parties: Parties, timezone: str) -> ContractSla | None:
    """The SLA tier of the contract covering this work today (the region's date), if any."""
    return await store.assets.contract_sla(session, parties.family, parties.asset, timezone)


def from_asset(spec: TemplateSpec, fields: dict[str, Any], asset: Asset | None) -> dict[str, Any]:
    """``fields`` with the template's ``from_asset`` fields filled from the asset where left empty."""
    return store.assets.fill_from_asset(spec, fields, asset)
