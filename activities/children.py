"""Child tickets of a ``spawn`` node (docs/linked-tickets.md).

``children.prepare`` does what intake does for a child, without starting it — the parent starts
it as a child workflow, so Temporal ties the two together: the latest version of the child's
ticket type, the parent's region and its business calendar, the form values (validated for the
child's template; bad ones are a non-retryable ``Children:InvalidFields``), and the intake row.
Idempotent by the child's business key (``models.children.child_key``): a retry finds the row the
first attempt wrote and answers with the same input.

``children.status`` reads where children stand (the parent polls it after a continue-as-new,
when the child workflows' handles are gone); ``children.cancel`` sends each open child a signed
``cancel`` as the system (the parent was cancelled and the template says its children go too).
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import store.links
import store.regions
import store.templates
import store.tickets
from activities.resources import database
from domain.forms import validate_values
from domain.ids import ticket_id_for_key
from domain.lifecycle import TERMINAL, RefusalType
from domain.signing import seal, update_id
from models.children import CancelChildren, CancelledChildren, ChildIds, ChildStatuses, PrepareChild
from models.settings import Settings, get_settings
from models.tables import Ticket
from models.ticket import SYSTEM, CancelInput, TicketFacts, TicketInput, TicketState, TicketStatus, initial_state

CHANNEL = "system"  # the channel a child is raised through
MAX_FIELDS_BYTES = 64 * 1024  # as POST /tickets: form values of one ticket
SIGNED_FOR = timedelta(minutes=5)  # how long a cancel this activity signs stays acceptable
STILL_RUNNING = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)

UNKNOWN_TICKET_TYPE = "Children:UnknownTicketType"
UNKNOWN_REGION = "Children:UnknownRegion"
INVALID_FIELDS = "Children:InvalidFields"
CANCEL_REFUSED = "Children:CancelRefused"

_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """The settings whose action signing key ``children.cancel`` signs with (default:
    ``get_settings()``, as the worker's own); tests install theirs."""
    global _settings
    _settings = settings


def _refuse(type_: str, message: str, **details: Any) -> ApplicationError:
    return ApplicationError(message, details, type=type_, non_retryable=True)


# --- prepare ---


@activity.defn(name="children.prepare")
async def prepare(inp: PrepareChild) -> TicketInput:
    """The child's workflow input, its intake row written (once)."""
    child_id = ticket_id_for_key(inp.key)
    async with database().session() as session:
        if (row := await store.tickets.get(session, child_id)) is not None:
            return await _written(session, row)  # an earlier attempt wrote it
        child = await _child_input(session, inp, child_id)
        request_hash = hashlib.sha256(json.dumps(inp.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        try:
            await store.tickets.insert_intake(session, initial_state(child), inp.key, request_hash)
            await session.commit()
        except IntegrityError:  # a concurrent attempt wrote it first
            await session.rollback()
            row = await store.tickets.get(session, child_id, fresh=True)
            if row is None:
                raise
            return await _written(session, row)
    activity.logger.info("prepared child %s (%s) of %s", child_id, inp.ticket_type, inp.parent_id)
    return child


async def _child_input(session: AsyncSession, inp: PrepareChild, child_id: str) -> TicketInput:
    row = await store.templates.latest(session, inp.ticket_type)
    if row is None:
        raise _refuse(UNKNOWN_TICKET_TYPE, f"unknown ticket type {inp.ticket_type!r}", field="ticket_type")
    version = store.templates.to_version(row)
    region = await store.regions.get(session, inp.region)
    if region is None:
        raise _refuse(UNKNOWN_REGION, f"unknown region {inp.region!r}", field="region")
    fields, problems = validate_values(version.spec, inp.fields, roles=None, intake=True)
    if problems:
        listed = [{"field": f, "msg": m, "type": t} for f, m, t in problems]
        names = ", ".join(f"{p['field']} ({p['msg']})" for p in listed)
        raise _refuse(INVALID_FIELDS, f"{version.key}: invalid form values: {names}", problems=listed)
    size = len(json.dumps(fields, ensure_ascii=False).encode())
    if size > MAX_FIELDS_BYTES:
        problem = {"field": "fields", "msg": f"{size} bytes; at most {MAX_FIELDS_BYTES}", "type": "too_large"}
        raise _refuse(INVALID_FIELDS, f"{version.key}: form values too large", problems=[problem])
    return TicketInput(
        ticket_id=child_id,
        ticket_type=version.key,
        template=version,
        region=region.code,
        priority=inp.priority,
        title=inp.title,
        description=inp.description,
        channel=CHANNEL,
        reporter=inp.reporter,
        fields=fields,
        customer_id=inp.customer_id,
        parent_id=inp.parent_id,
        created_by=SYSTEM,
        created_at=datetime.now(UTC),
        calendar=store.regions.calendar_for(region),
    )


async def _written(session: AsyncSession, row: Ticket) -> TicketInput:
    """The input an earlier attempt prepared, from its intake row (the same template version,
    values and creation time)."""
    state = TicketState.model_validate(row.snapshot)
    template = await store.templates.version(session, state.template_key, state.template_version)
    region = await store.regions.get(session, state.region)
    if template is None or region is None:  # both existed when the row was written
        raise _refuse(UNKNOWN_TICKET_TYPE, f"{state.template_key} v{state.template_version} or {state.region} is gone")
    facts = state.model_dump(include=set(TicketFacts.model_fields))
    return TicketInput(
        **facts,
        created_by=SYSTEM,
        created_at=state.created_at,
        template=store.templates.to_version(template),
        calendar=store.regions.calendar_for(region),
    )


# --- status ---


@activity.defn(name="children.status")
async def status(inp: ChildIds) -> ChildStatuses:
    """Each child's status in the read model (a child writes its final state there before its
    workflow completes). A child whose workflow ended without closing (terminated, timed out)
    reads as cancelled: nobody will close it."""
    async with database().session() as session:
        rows = await store.links.tickets(session, inp.ids)
    out = {cid: TicketStatus(row.status) for cid, row in rows.items()}
    client = activity.client()
    for cid, current in list(out.items()):
        if current in TERMINAL:
            continue
        try:
            described = await client.get_workflow_handle(f"ticket-{cid}").describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        if described.status not in STILL_RUNNING:
            async with database().session() as session:  # it may have closed since the first read
                row = await store.tickets.get(session, cid, fresh=True)
            final = TicketStatus(row.status) if row is not None else current
            out[cid] = final if final in TERMINAL else TicketStatus.CANCELLED
    return ChildStatuses(statuses=out)


# --- cancel ---


@activity.defn(name="children.cancel")
async def cancel(inp: CancelChildren) -> CancelledChildren:
    """A signed ``cancel`` (as the system, which raised each child) to every child still open.
    One that ended meanwhile is reported in ``ended``; a resolved child (its work done, waiting to
    be closed) cannot be cancelled and is left as it is."""
    async with database().session() as session:
        rows = await store.links.tickets(session, inp.ids)
    settings = _settings or get_settings()
    key_id, keys = settings.signing_keys()
    client = activity.client()
    out = CancelledChildren()
    for cid in inp.ids:
        row = rows.get(cid)
        if row is not None and row.status in TERMINAL:
            out.ended[cid] = TicketStatus(row.status)
            continue
        unsigned = CancelInput(actor=SYSTEM, reason=inp.reason)
        expires = datetime.now(UTC) + SIGNED_FOR
        request = f"parent-cancel:{inp.parent_id}:{cid}"  # the same on every attempt: taken once
        sealed = seal(unsigned, cid, "cancel", key_id, keys[key_id], expires, request_id=request)
        try:
            state = await client.get_workflow_handle(f"ticket-{cid}").execute_update(
                "cancel", sealed, id=update_id("cancel", sealed), result_type=TicketState
            )
        except WorkflowUpdateFailedError as exc:
            _nothing_to_cancel(exc, cid, out)  # or raises
            continue
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue  # its workflow is gone: it ended (its row says how)
        if state.status == TicketStatus.CANCELLED:
            out.cancelled.append(cid)
    return out


def _nothing_to_cancel(exc: WorkflowUpdateFailedError, cid: str, out: CancelledChildren) -> None:
    """Returns when the child's refusal means there is nothing to cancel (it ended: noted in
    ``out``; or it is resolved). A run handing over (``TicketMoving``) raises to be retried; any
    other refusal is a fault no retry mends."""
    cause = exc.cause
    kind = cause.type if isinstance(cause, ApplicationError) else None
    if kind == RefusalType.MOVING:
        raise ApplicationError(f"child {cid} is moving to a new run; retry") from exc
    if kind == RefusalType.INVALID_TRANSITION:  # ended, or resolved and waiting to be closed
        details = cause.details[0] if isinstance(cause, ApplicationError) and cause.details else {}
        now = details.get("status") if isinstance(details, dict) else None
        if isinstance(now, str) and now in TERMINAL:
            out.ended[cid] = TicketStatus(now)
        return
    raise _refuse(CANCEL_REFUSED, f"child {cid} refused the cancel: {exc.cause}", child=cid, refusal=kind)
