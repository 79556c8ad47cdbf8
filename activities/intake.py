"""``intake.open_ticket``: open a ticket from inside the worker — a schedule's firing, a follow-up,
a parent's child — the way ``POST /tickets`` does (api/services/tickets.py ``create_ticket``):
the latest version of the ticket type, the region and its business calendar, the asset and its
customer (and the contract SLA covering the work today), form values validated for the
template, the intake row, then the ``TicketWorkflow`` start.

Idempotent by the business key (``OpenTicket.key``): the ticket id is
``domain.ids.ticket_id_for_key(key)`` and the workflow id ``ticket-<id>`` is started with
``REJECT_DUPLICATE``, so a retried attempt, a firing delivered twice or a replayed workflow
task finds the ticket the key opened and answers ``new=False``. An intake row whose workflow
never started (an attempt that died between the two) is written again and the start retried.

A request that cannot succeed (unknown ticket type, region, asset or customer, bad form values,
a template not raised through this channel) is a non-retryable ``ApplicationError`` whose type
names the problem (``Intake:…``).
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import store.assets
import store.customers
import store.people
import store.regions
import store.templates
import store.tickets
from activities.resources import database
from domain.forms import validate_values
from domain.ids import ticket_id_for_key
from models import search_attributes as attrs
from models.customer_tables import Asset, Customer
from models.intake import OpenedTicket, OpenTicket
from models.template import TemplateSpec
from models.ticket import SYSTEM, ActorRef, TicketInput, initial_state

WORKFLOW = "TicketWorkflow"
MAX_FIELDS_BYTES = 64 * 1024  # as POST /tickets: form values of one ticket

UNKNOWN_TICKET_TYPE = "Intake:UnknownTicketType"
UNKNOWN_REGION = "Intake:UnknownRegion"
UNKNOWN_ASSET = "Intake:UnknownAsset"
UNKNOWN_CUSTOMER = "Intake:UnknownCustomer"
ASSET_OF_ANOTHER_CUSTOMER = "Intake:AssetOfAnotherCustomer"
CHANNEL_NOT_ALLOWED = "Intake:ChannelNotAllowed"
INVALID_FIELDS = "Intake:InvalidFields"


def _refuse(type_: str, message: str, **details: Any) -> ApplicationError:
    return ApplicationError(message, details, type=type_, non_retryable=True)


@activity.defn(name="intake.open_ticket")
async def open_ticket(inp: OpenTicket) -> OpenedTicket:
    """Open the ticket ``inp.key`` names, once; a repeat answers with the same id and ``new=False``."""
    ticket_id = ticket_id_for_key(inp.key)
    async with database().session() as session:
        if not await _needs_opening(session, ticket_id):
            return OpenedTicket(ticket_id=ticket_id, new=False)
        ticket_input, summary = await _ticket_input(session, inp, ticket_id)
        state = initial_state(ticket_input)
        request_hash = hashlib.sha256(json.dumps(inp.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        try:
            await store.tickets.insert_intake(session, state, inp.key, request_hash)
            await session.commit()
        except IntegrityError:  # a concurrent attempt with the same key wrote it first: it starts it
            await session.rollback()
            return OpenedTicket(ticket_id=ticket_id, new=False)
        try:
            await activity.client().start_workflow(
                WORKFLOW,
                ticket_input,
                id=f"ticket-{ticket_id}",
                task_queue=activity.info().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=attrs.at_start(
                    state.status.value, state.region, state.priority.value, state.ticket_type
                ),
                static_summary=summary,
                static_details=f"Ticket **{ticket_id}** from {state.channel}, created by {state.created_by}, "
                f"key `{inp.key}`" + (f", external ref `{state.external_ref}`" if state.external_ref else ""),
            )
        except WorkflowAlreadyStartedError:
            return OpenedTicket(ticket_id=ticket_id, new=False)
        except RPCError:
            await store.tickets.forget_intake(session, ticket_id)  # the retry writes it again
            await session.commit()
            raise
    activity.logger.info("opened ticket %s (%s) for key %s", ticket_id, inp.ticket_type, inp.key)
    return OpenedTicket(ticket_id=ticket_id, new=True)


async def _needs_opening(session: AsyncSession, ticket_id: str) -> bool:
    """No row yet; or a row the projection never wrote to (seq 0) whose workflow does not exist —
    an earlier attempt wrote it and died before the start: its row goes, and this attempt opens it."""
    row = await store.tickets.get(session, ticket_id)
    if row is None:
        return True
    if row.seq > 0:
        return False
    try:
        await activity.client().get_workflow_handle(f"ticket-{ticket_id}").describe()
        return False
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    await store.tickets.forget_intake(session, ticket_id)
    await session.commit()
    return True


async def _ticket_input(session: AsyncSession, inp: OpenTicket, ticket_id: str) -> tuple[TicketInput, str]:
    row = await store.templates.latest(session, inp.ticket_type)
    if row is None:
        raise _refuse(UNKNOWN_TICKET_TYPE, f"unknown ticket type {inp.ticket_type!r}", field="ticket_type")
    version = store.templates.to_version(row)
    spec = version.spec
    if spec.channels and inp.channel not in spec.channels:
        raise _refuse(
            CHANNEL_NOT_ALLOWED,
            f"{spec.key} tickets are raised through {', '.join(spec.channels)}, not {inp.channel}",
            field="channel",
        )
    region = await store.regions.get(session, inp.region)
    if region is None:
        raise _refuse(UNKNOWN_REGION, f"unknown region {inp.region!r}", field="region")
    actor = await _creator(session, inp.created_by)
    asset, customer, family = await _parties(session, inp)
    fields = checked_fields(spec, store.assets.fill_from_asset(spec, inp.fields, asset), actor)
    ticket_input = TicketInput(
        ticket_id=ticket_id,
        ticket_type=version.key,
        template=version,
        region=region.code,
        priority=inp.priority or spec.default_priority,
        title=inp.title,
        description=inp.description,
        channel=inp.channel,
        external_ref=inp.external_ref,
        reporter=customer.name if customer is not None else None,
        created_by=actor,
        created_at=datetime.now(UTC),
        fields=fields,
        customer_id=customer.id if customer is not None else None,
        asset_id=asset.id if asset is not None else None,
        contract_sla=await store.assets.contract_sla(session, family, asset, region.timezone),
        calendar=store.regions.calendar_for(region),
    )
    summary = f"{spec.name} · {region.name} · {ticket_input.priority.value}: {inp.title}"
    return ticket_input, summary


async def _creator(session: AsyncSession, person_id: str) -> ActorRef:
    """The person ``created_by`` names if they are active (roles and regions from their row),
    else the system."""
    if person_id == SYSTEM.id:
        return SYSTEM
    person = await store.people.get(session, person_id)
    if person is None or not person.active:
        return SYSTEM
    return ActorRef(
        id=person.id,
        name=person.name,
        roles=list(person.roles),
        regions=list(person.regions),
        groups=list(person.groups),
    )


async def _parties(session: AsyncSession, inp: OpenTicket) -> tuple[Asset | None, Customer | None, list[str]]:
    """The asset and the customer (the asset's owner when none is named; a merged record's
    survivor), and the customer's records (survivor and merged ones)."""
    asset = None
    if inp.asset_id is not None:
        asset = await store.assets.get(session, inp.asset_id)
        if asset is None:
            raise _refuse(UNKNOWN_ASSET, f"no asset {inp.asset_id!r}", field="asset_id")
    customer_id = inp.customer_id or (asset.customer_id if asset is not None else None)
    if customer_id is None:
        return asset, None, []
    customer = await store.customers.get(session, customer_id)
    if customer is None:
        raise _refuse(UNKNOWN_CUSTOMER, f"no customer {customer_id!r}", field="customer_id")
    family = await store.customers.family(session, customer.id)
    if asset is not None and asset.customer_id not in family:
        raise _refuse(ASSET_OF_ANOTHER_CUSTOMER, "this asset belongs to another customer", field="asset_id")
    return asset, customer, family


def checked_fields(spec: TemplateSpec, submitted: dict[str, Any], actor: ActorRef) -> dict[str, Any]:
    """Form values normalised for the template (the system may set every field; a person what
    their roles may), or a non-retryable ``Intake:InvalidFields`` naming each problem."""
    roles = None if actor.id == SYSTEM.id else actor.roles
    fields, problems = validate_values(spec, submitted, roles=roles, intake=True)
    if problems:
        listed = [{"field": f, "msg": m, "type": t} for f, m, t in problems]
        names = ", ".join(f"{p['field']} ({p['msg']})" for p in listed)
        raise _refuse(INVALID_FIELDS, f"{spec.key}: invalid form values: {names}", problems=listed)
    size = len(json.dumps(fields, ensure_ascii=False).encode())
    if size > MAX_FIELDS_BYTES:
        problem = {"field": "fields", "msg": f"{size} bytes; at most {MAX_FIELDS_BYTES}", "type": "too_large"}
        raise _refuse(INVALID_FIELDS, f"{spec.key}: form values too large", problems=[problem])
    return fields
