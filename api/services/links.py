"""Tickets that belong together (docs/linked-tickets.md): links (duplicate of, related to, caused
by) and merging a duplicate into its master.

Scope: staff only (``StaffActor``), and both tickets must be in the caller's regions — a ticket
outside them is ``NotFound``, as everywhere; a listed link whose other end the caller may not see
is left out. A pair is linked once per kind (``related_to`` in either direction), never to itself;
a ticket is the duplicate of one master at most and no chain of duplicates loops.

Merging (supervisors, managers, admins; both tickets open; the same customer, or no customer on
either) marks the duplicate_of link ``merged`` and cancels the duplicate with the reason "merged
into <master>" through the ticket's own ``cancel`` action (``tickets.act``). The link is written
first: if the ticket then refuses the cancel, the link is put back as it was. A merge repeated
once done answers as the first did. From then on ``forward_target`` tells the events route where
the duplicate's later events (the customer's messages) go.
"""

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

import store.customers
import store.links
import store.tickets
from api.errors import ActionTimedOut, Conflict, DomainError, FieldInvalid, Forbidden, InvalidTransition, NotFound
from api.services import audit, tickets
from domain.access import can_access_region
from domain.lifecycle import TERMINAL
from models.link_tables import DUPLICATE_OF, TicketLink
from models.links_http import LinkCreate, LinkedTicket, LinkKind, LinkList, LinkOut, MergeOut
from models.settings import Settings
from models.tables import Ticket
from models.ticket import ActorRef, CancelInput, TicketStatus
from workflows.actions import ACTIONS

MERGERS = frozenset({"supervisor", "manager", "admin"})
SYMMETRIC = (LinkKind.RELATED_TO, LinkKind.CAUSED_BY)  # linked once either way (a cause is never its own effect)


async def _visible(session: AsyncSession, actor: ActorRef, ticket_id: str) -> Ticket:
    row = await store.tickets.get(session, ticket_id)
    if row is None or not can_access_region(actor, row.region):
        raise NotFound(f"ticket {ticket_id} not found")
    return row


def _out(link: TicketLink, seen_from: str, other: Ticket) -> LinkOut:
    return LinkOut(
        id=link.id,
        kind=LinkKind(link.kind),
        ticket_id=link.ticket_id,
        target_id=link.target_id,
        direction="outgoing" if link.ticket_id == seen_from else "incoming",
        other=LinkedTicket(
            id=other.id, title=other.title, status=other.status, region=other.region, ticket_type=other.ticket_type
        ),
        merged=link.merged,
        created_by=link.created_by,
        created_at=link.created_at,
    )


async def _no_loop(session: AsyncSession, ticket_id: str, master_id: str, field: str) -> None:
    """``ticket_id`` may become a duplicate of ``master_id``: it is not a master above it."""
    if ticket_id in await store.links.masters(session, master_id):
        raise FieldInvalid(
            field, f"{master_id} is a duplicate of {ticket_id} (or of a duplicate of it): that would loop", "loop"
        )


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:  # a concurrent request linked the same pair (or the same duplicate)
        await session.rollback()
        raise Conflict("another request linked these tickets at the same moment; read the links again") from exc


# --- links ---


async def add_link(session: AsyncSession, actor: ActorRef, ticket_id: str, body: LinkCreate) -> LinkOut:
    await _visible(session, actor, ticket_id)
    if body.target == ticket_id:
        raise FieldInvalid("target", "a ticket is not linked to itself", "self_link")
    target = await _visible(session, actor, body.target)
    kind = body.kind.value
    same = await store.links.find(session, ticket_id, target.id, kind)
    if same is None and body.kind in SYMMETRIC:
        same = await store.links.find(session, target.id, ticket_id, kind)
    if same is not None:
        raise Conflict(f"{ticket_id} and {target.id} are linked as {kind} already", link=same.id)
    if body.kind == LinkKind.DUPLICATE_OF:
        if (master := await store.links.master_link(session, ticket_id)) is not None:
            raise Conflict(f"{ticket_id} is a duplicate of {master.target_id} already", link=master.id)
        await _no_loop(session, ticket_id, target.id, "target")
    link = TicketLink(
        id=TicketLink.new_id(),
        ticket_id=ticket_id,
        target_id=target.id,
        kind=kind,
        created_by=actor.id,
        created_at=datetime.now(UTC),
    )
    store.links.add(session, link)
    audit.record(
        session, actor, "ticket.link", "ticket", ticket_id, None, {"link": link.id, "kind": kind, "target": target.id}
    )
    await _commit(session)
    return _out(link, ticket_id, target)


async def list_links(session: AsyncSession, actor: ActorRef, ticket_id: str) -> LinkList:
    await _visible(session, actor, ticket_id)
    links = await store.links.of_ticket(session, ticket_id)
    ends = {link.target_id if link.ticket_id == ticket_id else link.ticket_id for link in links}
    others = await store.links.tickets(session, sorted(ends))
    items = []
    for link in links:
        other = others.get(link.target_id if link.ticket_id == ticket_id else link.ticket_id)
        if other is not None and can_access_region(actor, other.region):
            items.append(_out(link, ticket_id, other))
    return LinkList(items=items)


async def delete_link(session: AsyncSession, actor: ActorRef, ticket_id: str, link_id: str) -> None:
    await _visible(session, actor, ticket_id)
    link = await store.links.get(session, ticket_id, link_id)
    other = None
    if link is not None:
        other = await store.tickets.get(session, link.target_id if link.ticket_id == ticket_id else link.ticket_id)
    if link is None or other is None or not can_access_region(actor, other.region):
        raise NotFound(f"link {link_id} of ticket {ticket_id} not found")
    if link.merged:
        raise Conflict(f"{link.ticket_id} was merged into {link.target_id}: a merge is final", code="merged")
    before = {"link": link.id, "kind": link.kind, "from": link.ticket_id, "to": link.target_id}
    audit.record(session, actor, "ticket.unlink", "ticket", ticket_id, before, None)
    await store.links.delete(session, link)
    await session.commit()


# --- merge ---


async def merge(
    session: AsyncSession, client: Client, settings: Settings, actor: ActorRef, ticket_id: str, into: str
) -> MergeOut:
    if MERGERS.isdisjoint(actor.roles):
        raise Forbidden(f"{actor.id} may not merge tickets: supervisors, managers and admins do")
    duplicate = await _visible(session, actor, ticket_id)
    if into == ticket_id:
        raise FieldInvalid("into", "a ticket is not merged into itself", "self_link")
    master = await _visible(session, actor, into)
    existing = await store.links.master_link(session, ticket_id)
    if existing is not None and existing.merged and existing.target_id == into and duplicate.status == "cancelled":
        ticket = await tickets.get_ticket(session, client, actor, ticket_id)  # merged before: the same answer
        return MergeOut(ticket=ticket, link=_out(existing, ticket_id, master))
    for row in (duplicate, master):
        if row.status in TERMINAL:
            raise InvalidTransition(
                f"ticket {row.id} is {row.status}: only open tickets are merged", status=row.status, allowed_actions=[]
            )
    await _same_customer(session, duplicate, master)
    if existing is not None and existing.target_id != into:
        raise Conflict(f"{ticket_id} is a duplicate of {existing.target_id}: merge it there", link=existing.id)
    await _no_loop(session, ticket_id, into, "into")
    link = existing or TicketLink(
        id=TicketLink.new_id(),
        ticket_id=ticket_id,
        target_id=into,
        kind=DUPLICATE_OF,
        created_by=actor.id,
        created_at=datetime.now(UTC),
    )
    link.merged = True
    store.links.add(session, link)
    audit.record(session, actor, "ticket.merge", "ticket", ticket_id, None, {"into": into, "link": link.id})
    await _commit(session)
    merged = _out(link, ticket_id, master)  # as committed (the session's objects expire once it rolls back)
    cancel = CancelInput(actor=actor, reason=f"merged into {into}")
    try:
        ticket = await tickets.act(
            session, client, settings, actor, ticket_id, ACTIONS["cancel"], cancel, idempotency_key=f"merge:{into}"
        )
    except DomainError as exc:
        if not (isinstance(exc, ActionTimedOut) and exc.extra.get("applied")):  # the cancel will never apply
            await _unmerge(session, actor, merged, created=existing is None)
        raise
    return MergeOut(ticket=ticket, link=merged)


async def _same_customer(session: AsyncSession, duplicate: Ticket, master: Ticket) -> None:
    """Both tickets are for the same customer (across merged customer records), or one names none."""
    if duplicate.customer_id is None or master.customer_id is None:
        return
    a = await store.customers.get(session, duplicate.customer_id)
    b = await store.customers.get(session, master.customer_id)
    if a is None or b is None or a.id != b.id:
        raise FieldInvalid("into", f"{master.id} is another customer's ticket", "another_customer")


async def _unmerge(session: AsyncSession, actor: ActorRef, merged: LinkOut, created: bool) -> None:
    """The ticket refused the cancel: the link goes back to what it was."""
    await session.rollback()
    row = await store.links.get(session, merged.ticket_id, merged.id)
    if row is None:
        return
    if created:
        await store.links.delete(session, row)
    else:
        row.merged = False
        store.links.add(session, row)
    audit.record(session, actor, "ticket.merge_undone", "ticket", merged.ticket_id, {"into": merged.target_id}, None)
    await session.commit()


async def forward_target(session: AsyncSession, ticket_id: str) -> str | None:
    """Where events sent to a merged ticket go: its master (or, if that was merged on, the first
    ticket up the chain of merges that was not). None: the ticket was not merged."""
    row = await store.tickets.get(session, ticket_id)
    if row is None or row.status != TicketStatus.CANCELLED:
        return None
    chain = await store.links.masters(session, ticket_id, merged_only=True)
    if not chain:
        return None
    rows = await store.links.tickets(session, chain)
    return next((m for m in chain if m in rows and rows[m].status != TicketStatus.CANCELLED), chain[-1])
