"""Tickets: intake, reads and actions. Every function is scoped by the caller's regions:
a ticket outside them is ``NotFound`` and Temporal is never asked about it."""

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import store.customers
import store.integrations
import store.people
import store.regions
import store.templates
import store.tickets
from api.errors import (
    ActionTimedOut,
    Conflict,
    DomainError,
    FieldInvalid,
    Forbidden,
    InvalidTransition,
    NotFound,
    ProblemList,
    ServiceUnavailable,
)
from api.services import customer360, links, templates, ticket_parties
from api.services.paging import cursor_key
from api.signing import seal, update_id
from domain.access import can_access_region, visible_regions
from domain.classification import classify
from domain.forms import validate_values, visible_values
from domain.ids import new_ticket_id, ticket_id_for_key
from domain.lifecycle import TERMINAL, RefusalType, allowed_actions, allowed_for
from domain.roles import is_machine
from models import search_attributes as attrs
from models.schemas import Channel, TicketCreate, TicketEventOut, TicketEventPage, TicketOut, TicketPage, TicketSummary
from models.settings import Settings
from models.tables import Ticket, TicketEventRow
from models.template import TemplateSpec, TemplateVersion
from models.ticket import (
    Action,
    ActorInput,
    ActorRef,
    EventInput,
    Priority,
    TicketInput,
    TicketState,
    TicketStatus,
    initial_state,
)
from workflows.actions import ActionDef
from workflows.ticket import TicketWorkflow, workflow_id

QUERY_TIMEOUT = timedelta(seconds=5)
MAX_FIELDS_BYTES = 64 * 1024  # form values in one request (each value is bounded too: domain/forms.py)
EVENTS_SHOWN = 50  # events GET /tickets/{id} includes (the latest); /events pages through all
MOVING_RETRIES = 5  # an action that met the run handing over to the next is sent again


@dataclass
class Created:
    ticket: TicketOut
    new: bool  # False: an earlier request with the same key already created it


# --- intake ---


def _dedup_key(actor: ActorRef, body: TicketCreate, idempotency_key: str | None) -> str | None:
    """The caller's own de-duplication key: nobody can squat a key (or an external ref) another
    caller — a channel, a business source — will send later."""
    if idempotency_key:
        return f"key:{actor.id}:{idempotency_key}"
    if body.external_ref:
        return f"ref:{actor.id}:{body.channel.value}:{body.external_ref}"
    return None


def ticket_id_for(actor_id: str, idempotency_key: str) -> str:
    """The id of the ticket ``actor_id`` creates with ``idempotency_key`` (known before it exists)."""
    return ticket_id_for_key(f"key:{actor_id}:{idempotency_key}")


def _request_hash(body: TicketCreate) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


async def create_ticket(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    actor: ActorRef,
    body: TicketCreate,
    idempotency_key: str | None,
) -> Created:
    parties = await ticket_parties.resolve(session, actor, body)
    region_code = body.region or parties.region
    if region_code is None:
        raise FieldInvalid("region", "name the region (or an asset or customer it comes from)", "missing")
    region = await store.regions.get(session, region_code)
    if region is None:
        raise FieldInvalid("region", f"unknown region {region_code!r}", "unknown_region")
    if not can_access_region(actor, region_code):
        raise Forbidden(f"actor {actor.id!r} may not create tickets in region {region_code!r}")
    if is_machine(actor.roles) and body.channel == Channel.AGENT:
        raise FieldInvalid(
            "channel",
            "a channel account raises tickets through its channel (qr, web, erp…), not as an agent",
            "channel_not_allowed",
        )
    version, priority = await _pick_template(session, body)
    if version.spec.channels and body.channel.value not in version.spec.channels:
        raise FieldInvalid(
            "channel",
            f"{version.key} tickets are raised through {', '.join(version.spec.channels)}, not {body.channel.value}",
            "channel_not_allowed",
        )
    submitted = ticket_parties.from_asset(version.spec, body.fields, parties.asset)
    fields = _checked_fields(version, submitted, actor, intake=True)

    key = _dedup_key(actor, body, idempotency_key)
    request_hash = _request_hash(body)
    ticket_id = ticket_id_for_key(key) if key else new_ticket_id()
    if key and (existing := await store.tickets.get(session, ticket_id)) is not None:
        return await _repeat(session, client, actor, existing, request_hash, bool(idempotency_key))

    ticket_input = TicketInput(
        ticket_id=ticket_id,
        ticket_type=version.key,
        template=version,
        region=region.code,
        priority=priority,
        title=body.title,
        description=body.description,
        channel=body.channel.value,
        external_ref=body.external_ref,
        reporter=body.reporter or (parties.customer.name if parties.customer is not None else None),
        created_by=actor,
        created_at=datetime.now(UTC),
        fields=fields,
        customer_id=parties.customer.id if parties.customer is not None else None,
        asset_id=parties.asset.id if parties.asset is not None else None,
        contract_sla=await ticket_parties.contract_sla(session, parties, region.timezone),
        calendar=store.regions.calendar_for(region),
    )
    state = initial_state(ticket_input)
    # The row first: if the database cannot take it, nothing has started (503, no ghost ticket);
    # if Temporal then refuses the start, the row goes again.
    try:
        await _record_intake(session, state, key, request_hash)
    except IntegrityError:  # a concurrent request with the same key got there first
        await session.rollback()
        return Created(await _view_just_started(session, client, actor, ticket_id), new=False)
    # Bounded like an action (``action_timeout_s``): a Temporal that refuses connections fails
    # after the client's retries, one that hangs must not hold the request (or the intake row).
    start_timeout = timedelta(seconds=settings.action_timeout_s)
    try:
        start = client.start_workflow(
            TicketWorkflow.run,
            ticket_input,
            id=workflow_id(ticket_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attrs.at_start(state.status.value, state.region, state.priority.value, state.ticket_type),
            static_summary=f"{version.spec.name} · {region.name} · {state.priority.value}: {state.title}",
            static_details=f"Ticket **{ticket_id}** from {state.channel}, created by {actor.id}"
            + (f", external ref `{state.external_ref}`" if state.external_ref else ""),
            rpc_timeout=start_timeout,
        )
        await asyncio.wait_for(start, start_timeout.total_seconds())
    except WorkflowAlreadyStartedError:
        # Started before (its row had gone): the ticket exists.
        return Created(await _view_just_started(session, client, actor, ticket_id), new=False)
    except (RPCError, TimeoutError) as exc:
        # Not started, or not known to be: the row goes. Had the start reached Temporal after
        # all, its projection writes the row again and the same key finds that ticket.
        await _forget_intake(session, ticket_id)
        why = exc.message if isinstance(exc, RPCError) else f"no answer within {start_timeout.total_seconds():g}s"
        again = " with the same Idempotency-Key (the ticket is created once)" if idempotency_key else ""
        raise ServiceUnavailable(f"Temporal is unavailable ({why}): send the request again{again}") from exc
    return Created(_out(state, "workflow", actor=actor, spec=version.spec), new=True)


async def _forget_intake(session: AsyncSession, ticket_id: str) -> None:
    """The workflow did not start: the intake row goes, unless the projection already wrote to it."""
    await store.tickets.forget_intake(session, ticket_id)
    await session.commit()


async def _pick_template(session: AsyncSession, body: TicketCreate) -> tuple[TemplateVersion, Priority]:
    """The template named by ticket_type, else the one the classification rules pick."""
    if body.ticket_type:
        row = await store.templates.latest(session, body.ticket_type)
        if row is None:
            raise FieldInvalid("ticket_type", f"unknown ticket type {body.ticket_type!r}", "unknown_ticket_type")
        version = templates.to_version(row)
        return version, body.priority or version.spec.default_priority
    channel = body.channel.value  # only templates raised through this channel take part
    published = [
        v for v in await templates.all_latest_specs(session) if not v.spec.channels or channel in v.spec.channels
    ]
    by_key = {v.key: v for v in published}
    found = classify([v.spec for v in published], body.channel.value, body.title, body.description, body.fields)
    if found is None:
        raise FieldInvalid(
            "ticket_type", "no template's classification rules match: name a ticket_type", "unclassified"
        )
    return by_key[found.spec.key], body.priority or found.priority


async def _record_intake(session: AsyncSession, state: TicketState, key: str | None, request_hash: str) -> None:
    """Insert the ticket row before the workflow starts (the projection then keeps it current).
    A row with this id already there (the same key a moment ago) raises IntegrityError."""
    await store.tickets.insert_intake(session, state, key, request_hash)
    await session.commit()


async def _repeat(
    session: AsyncSession, client: Client, actor: ActorRef, existing: Ticket, request_hash: str, header_key: bool
) -> Created:
    if header_key and existing.request_hash not in (None, request_hash):
        raise FieldInvalid(
            "Idempotency-Key",
            "this Idempotency-Key was already used with a different request body",
            "idempotency_key_reused",
            location="header",
        )
    if not can_access_region(actor, existing.region):
        raise NotFound(f"ticket {existing.id} not found")
    return Created(await _view(session, client, actor, existing.id, with_events=False), new=False)


# --- reads ---


def _out(
    state: TicketState,
    source: str,
    events: list[TicketEventOut] | None = None,
    actor: ActorRef | None = None,
    spec: TemplateSpec | None = None,
    more_events: bool = False,
) -> TicketOut:
    dumped = state.model_dump(exclude={"requests"})
    if actor is not None and spec is not None:
        dumped["fields"] = visible_values(spec, state.fields, actor.roles)
    return TicketOut(
        **dumped,
        allowed_actions=allowed_for(state, actor) if actor is not None else [],
        ticket_actions=allowed_actions(state),
        workflow_id=workflow_id(state.ticket_id),
        source=source,
        events=events,
        more_events=more_events,
    )


async def _visible_row(session: AsyncSession, actor: ActorRef, ticket_id: str, to_send_event: bool = False) -> Ticket:
    """The ticket, if the caller may see it: in their regions, and for a channel account only
    the tickets it created — though it may send an event to any ticket of its regions (a customer
    answers on a ticket an agent raised; the template says which events it may send)."""
    row = await store.tickets.get(session, ticket_id)
    foreign = is_machine(actor.roles) and row is not None and row.created_by != actor.id and not to_send_event
    if row is None or not can_access_region(actor, row.region) or foreign:
        raise NotFound(f"ticket {ticket_id} not found")
    return row


async def _live_state(client: Client, row: Ticket) -> tuple[TicketState, str]:
    snapshot = TicketState.model_validate(row.snapshot)
    if row.status in TERMINAL:
        return snapshot, "read_model"  # final: the projection wrote it before the last action replied
    handle: WorkflowHandle = client.get_workflow_handle(workflow_id(row.id))
    try:
        return await handle.query(TicketWorkflow.get_state, rpc_timeout=QUERY_TIMEOUT), "workflow"
    except (RPCError, WorkflowQueryFailedError):
        return snapshot, "read_model"


async def _view(
    session: AsyncSession, client: Client, actor: ActorRef, ticket_id: str, with_events: bool = True
) -> TicketOut:
    row = await _visible_row(session, actor, ticket_id)
    state, source = await _live_state(client, row)
    spec = (await _template_of(session, state)).spec
    events, more = None, False
    if with_events:  # the latest ones; GET /tickets/{id}/events pages through them all
        rows = await store.tickets.latest_events(session, ticket_id, EVENTS_SHOWN + 1)
        more = len(rows) > EVENTS_SHOWN
        events = [_event_out(e, spec, actor) for e in reversed(rows[:EVENTS_SHOWN])]
    return _out(state, source, events, actor=actor, spec=spec, more_events=more)


def _event_out(row: TicketEventRow, spec: TemplateSpec, actor: ActorRef) -> TicketEventOut:
    """An event as the caller may see it: field values hidden from their roles are left out."""
    event = TicketEventOut.model_validate(row, from_attributes=True)
    if isinstance(event.data.get("fields"), dict):
        event.data = {**event.data, "fields": visible_values(spec, event.data["fields"], actor.roles)}
    return event


async def list_events(
    session: AsyncSession, actor: ActorRef, ticket_id: str, after_seq: int, limit: int
) -> TicketEventPage:
    """A ticket's history in seq order, a page at a time (read model only: Temporal is not asked)."""
    row = await _visible_row(session, actor, ticket_id)
    spec = (await _template_of_row(session, row)).spec
    rows = await store.tickets.events_after(session, ticket_id, after_seq, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    return TicketEventPage(
        items=[_event_out(e, spec, actor) for e in rows], next_after_seq=rows[-1].seq if more else None
    )


async def _template_of(session: AsyncSession, state: TicketState) -> TemplateVersion:
    return await templates.get_version(session, state.template_key or state.ticket_type, state.template_version or None)


async def _template_of_row(session: AsyncSession, row: Ticket) -> TemplateVersion:
    """The template version a ticket pinned at intake."""
    return await templates.get_version(session, row.ticket_type, row.template_version or None)


def _checked_fields(
    version: TemplateVersion, submitted: dict[str, Any], actor: ActorRef, intake: bool = False
) -> dict[str, Any]:
    """Form values normalised for the template, or one 422 naming each bad field."""
    fields, problems = validate_values(version.spec, submitted, roles=actor.roles, intake=intake)
    if problems:
        raise ProblemList([{"loc": ["body", "fields", f], "msg": m, "type": t} for f, m, t in problems])
    size = len(json.dumps(fields, ensure_ascii=False).encode())
    if size > MAX_FIELDS_BYTES:
        raise FieldInvalid(
            "fields", f"form values take {size} bytes; at most {MAX_FIELDS_BYTES} in one request", "too_large"
        )
    return fields


async def _view_just_started(session: AsyncSession, client: Client, actor: ActorRef, ticket_id: str) -> TicketOut:
    """The ticket a concurrent request is creating: its row may not be written yet, so ask the workflow."""
    if await store.tickets.get(session, ticket_id) is not None:
        return await _view(session, client, actor, ticket_id, with_events=False)
    try:
        state = await client.get_workflow_handle(workflow_id(ticket_id)).query(
            TicketWorkflow.get_state, rpc_timeout=QUERY_TIMEOUT
        )
    except (RPCError, WorkflowQueryFailedError) as exc:
        raise ServiceUnavailable("the ticket is being created by another request; retry") from exc
    if not can_access_region(actor, state.region):
        raise NotFound(f"ticket {ticket_id} not found")
    return _out(state, "workflow", actor=actor, spec=(await _template_of(session, state)).spec)


async def get_ticket(session: AsyncSession, client: Client, actor: ActorRef, ticket_id: str) -> TicketOut:
    """The ticket with its latest events and, when it names a customer the caller may see, the
    customer 360 (a bounded number of queries: api/services/customer360.py)."""
    ticket = await _view(session, client, actor, ticket_id)
    row = await store.tickets.get(session, ticket_id)
    if row is not None:
        ticket.customer_360 = await customer360.for_ticket(session, actor, row)
        ticket.reported = await store.integrations.occurrences_for(session, ticket_id)
    return ticket


@dataclass
class TicketFilter:
    status: TicketStatus | None = None
    region: str | None = None
    priority: Priority | None = None
    assignee: str | None = None
    ticket_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    sla_breached: bool | None = None
    customer_id: str | None = None  # the customer's tickets, across records merged into it
    asset_id: str | None = None


async def list_tickets(
    session: AsyncSession, actor: ActorRef, f: TicketFilter, limit: int, cursor: str | None
) -> TicketPage:
    """Newest first; keyset pagination on (created_at, id), stable under concurrent inserts.
    A ``region`` outside the caller's scope is refused (403), as the people and reports lists do."""
    if f.region is not None and not can_access_region(actor, f.region):
        raise Forbidden(f"actor {actor.id!r} may not list tickets of region {f.region!r}")
    rows, next_cursor = await store.tickets.page(
        session,
        regions=visible_regions(actor),
        status=f.status.value if f.status is not None else None,
        region=f.region,
        priority=f.priority.value if f.priority is not None else None,
        assignee=f.assignee,
        ticket_type=f.ticket_type,
        sla_breached=f.sla_breached,
        created_from=f.created_from,
        created_to=f.created_to,
        created_by=actor.id if is_machine(actor.roles) else None,  # a channel account lists its own
        customer_ids=await _customer_family(session, f.customer_id) if f.customer_id else None,
        asset_id=f.asset_id,
        limit=limit,
        after=cursor_key(cursor, datetime, str),
    )
    return TicketPage(
        items=[TicketSummary.model_validate(r, from_attributes=True) for r in rows], next_cursor=next_cursor
    )


async def _customer_family(session: AsyncSession, customer_id: str) -> list[str]:
    """The customer's records: the one it was merged into (if so) and every record merged into that."""
    survivor = await store.customers.get(session, customer_id)
    return await store.customers.family(session, survivor.id) if survivor is not None else [customer_id]


# --- actions ---


async def act(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    actor: ActorRef,
    ticket_id: str,
    d: ActionDef,
    update_input: ActorInput,
    idempotency_key: str | None = None,
    *,
    machine_reopen: bool = False,
) -> TicketOut:
    """Run one action (a row of the action table) as a Temporal Update; the validator's
    rejection becomes a 4xx. Channel accounts take no action through the API; a business
    system's mapping may reopen a ticket its source raised (``machine_reopen``, integrations only)."""
    if is_machine(actor.roles) and not (machine_reopen and d.action is Action.REOPEN):
        raise Forbidden(f"{actor.id!r} is a channel account: it sends events, not actions")
    row = await _visible_row(session, actor, ticket_id)
    action = d.action
    if action is Action.ASSIGN:
        await _check_assignee(session, update_input.assignee, row.region)
    if action is Action.DELEGATE:
        to = update_input.to
        if to == actor.id:
            raise FieldInvalid("to", "you cannot delegate to yourself", "delegate_to_self")
        await _check_assignee(session, to, row.region, field="to")
    version = await _template_of_row(session, row)
    if submitted := getattr(update_input, "fields", None):
        update_input = update_input.model_copy(update={"fields": _checked_fields(version, submitted, actor)})
    state = await _execute(session, client, settings, actor, row, d.name, update_input, idempotency_key)
    return _out(state, "workflow", actor=actor, spec=version.spec)


async def send_event(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    actor: ActorRef,
    ticket_id: str,
    name: str,
    submitted: dict[str, Any],
    text: str | None,
    idempotency_key: str | None = None,
) -> None:
    """An event (customer replied, ERP status changed, …): the template must declare it, the
    caller must be one of its senders and it may set only its declared fields. Answered once
    the workflow has taken it (its validator checked all that) and recorded it."""
    row = await _visible_row(session, actor, ticket_id, to_send_event=True)
    if row.status in TERMINAL and (master := await links.forward_target(session, row.id)) is not None:
        row = await _visible_row(session, actor, master, to_send_event=True)  # merged: its master takes it
    if row.status in TERMINAL:
        raise InvalidTransition(f"ticket {row.id} is {row.status}", status=row.status, allowed_actions=[])
    version = await _template_of_row(session, row)
    declared = version.spec.event(name)
    if declared is None:
        raise FieldInvalid(
            "name",
            f"{row.ticket_type} tickets take no event {name!r} (they take: {', '.join(version.spec.event_names())})",
            "unknown_event",
        )
    extra = [f for f in submitted if f not in declared.fields]
    if extra:
        raise ProblemList(
            [
                {"loc": ["body", "fields", f], "msg": f"the {name} event may not set {f}", "type": "not_settable"}
                for f in extra
            ]
        )
    fields = _checked_fields(version, submitted, actor)
    event = EventInput(actor=actor, name=name, fields=fields, text=text)
    await _execute(session, client, settings, actor, row, "send_event", event, idempotency_key)


async def _execute(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    actor: ActorRef,
    row: Ticket,
    name: str,
    update_input: ActorInput,
    idempotency_key: str | None,
) -> TicketState:
    """Sign the input and send the Update; map the workflow's refusal to a domain error.

    The input expires before the API stops waiting: an update the workflow has not accepted by
    then is refused by the workflow itself, so a 504 "not taken" is the truth and nothing
    applies late. An update accepted but still running at the deadline completes later: the 504
    says so, and the same Idempotency-Key returns its outcome."""
    timeout = settings.action_timeout_s
    expires = datetime.now(UTC) + timedelta(seconds=timeout * 0.8)
    key_id, keys = settings.signing_keys()
    request_id = f"{actor.id}:{idempotency_key}" if idempotency_key else None
    sealed = seal(update_input, row.id, name, key_id, keys[key_id], expires, request_id)
    handle = client.get_workflow_handle(workflow_id(row.id))
    try:
        return await _send(handle, name, sealed, update_id(name, sealed), timeout)
    except WorkflowUpdateFailedError as exc:
        _refusal(exc, name)
        raise
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # the workflow has completed: the ticket is final
            row = await store.tickets.get(session, row.id, fresh=True) or row
            raise InvalidTransition(
                f"cannot {name} a ticket that is {row.status}", status=row.status, allowed_actions=[]
            ) from exc
        if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise ActionTimedOut(f"{name} was not taken within {timeout:g}s: it will not be applied") from exc
        raise ServiceUnavailable(f"Temporal did not accept the {name}: {exc.message}") from exc


async def _send(handle: Any, update: str, sealed: ActorInput, uid: str, timeout: float) -> TicketState:
    """The Update, within ``timeout`` seconds in all; one that met the run handing over to the
    next (continue-as-new) is sent again, and so reaches the next run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for attempt in range(MOVING_RETRIES + 1):
        try:
            accepted = await asyncio.wait_for(
                handle.start_update(
                    update, sealed, id=uid, wait_for_stage=WorkflowUpdateStage.ACCEPTED, result_type=TicketState
                ),
                max(deadline - loop.time(), 0.01),
            )
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise ActionTimedOut(
                f"not taken within {timeout:g}s (no worker answered): it will not be applied; send it again",
                applied=False,
            ) from exc
        try:
            return await asyncio.wait_for(accepted.result(), max(deadline - loop.time(), 0.01))
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise ActionTimedOut(
                f"taken but not finished within {timeout:g}s: it will complete; send it again with the same "
                "Idempotency-Key (or read the ticket) to learn the outcome",
                applied=True,
            ) from exc
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if (
                not (isinstance(cause, ApplicationError) and cause.type == RefusalType.MOVING)
                or attempt == MOVING_RETRIES
            ):
                raise
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _refusal(exc: WorkflowUpdateFailedError, name: str) -> None:
    """The workflow refused the request: raise the domain error of its ``RefusalType`` (the one
    place a refusal becomes HTTP, through ``api/errors.py``)."""
    cause = exc.cause
    if not isinstance(cause, ApplicationError) or cause.type not in RefusalType._value2member_map_:
        return
    info: dict[str, Any] = cause.details[0] if cause.details else {}
    raise _REFUSALS[RefusalType(cause.type)](cause.message, info, name) from exc


def _form_problems(message: str, info: dict[str, Any], name: str) -> DomainError:
    return ProblemList(
        [
            {"loc": ["body", "fields", p["field"]], "msg": p["msg"], "type": "form_incomplete"}
            for p in info.get("problems", [])
        ]
    )


R = RefusalType
_REFUSALS: dict[RefusalType, Callable[[str, dict[str, Any], str], DomainError]] = {
    R.INVALID_TRANSITION: lambda m, i, n: InvalidTransition(
        m, status=i.get("status"), allowed_actions=i.get("allowed_actions", [])
    ),
    R.NOT_ALLOWED: lambda m, i, n: Forbidden(m),
    R.AMBIGUOUS: lambda m, i, n: Conflict(m, **({"nodes": i["nodes"]} if "nodes" in i else {})),
    R.ALREADY_VOTED: lambda m, i, n: Conflict(m),
    R.FORM: _form_problems,
    R.FROZEN: lambda m, i, n: Conflict(m, code="field_frozen", fields=i.get("fields", [])),
    R.EVENT: lambda m, i, n: FieldInvalid(str(i.get("field", "name")), m, "event_refused"),
    R.TOO_FAR: lambda m, i, n: FieldInvalid(str(i.get("field", "lat")), m, "too_far_from_site"),
    R.MOVING: lambda m, i, n: ServiceUnavailable("the ticket is moving to a new run: retry in a moment"),
    R.EXPIRED: lambda m, i, n: ActionTimedOut(
        f"{n} reached the ticket too late and was not applied: send it again", applied=False
    ),
    R.KEY_REUSED: lambda m, i, n: FieldInvalid(
        "Idempotency-Key",
        "this Idempotency-Key was already used with a different request",
        "idempotency_key_reused",
        location="header",
    ),
    # The worker does not hold the API's signing key: a deployment fault, not the caller's.
    R.UNSIGNED: lambda m, i, n: ServiceUnavailable(
        f"the ticket worker refused the API's signature ({m}): TICKETFLOW_ACTION_SIGNING_KEY must be the "
        "same for the API and the workers"
    ),
}


async def _check_assignee(session: AsyncSession, assignee_id: str, region: str, field: str = "assignee") -> None:
    assignee = await store.people.get(session, assignee_id)
    if assignee is None or not assignee.active:
        raise FieldInvalid(field, f"unknown or inactive actor {assignee_id!r}", "unknown_assignee")
    ref = ActorRef(id=assignee.id, regions=list(assignee.regions))
    if not can_access_region(ref, region):
        raise FieldInvalid(field, f"{assignee_id!r} does not work in region {region!r}", "assignee_out_of_region")
