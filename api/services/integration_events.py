"""The signed events of business systems (ERP, shop, devices), ``POST /integrations/{source}/events``:
checked (signature, size, shape), matched to the source's published mapping rules, planned,
decided and acted on (a ticket created, counted or reopened). Sources and their rules are
``api/services/integrations.py``'s.

An event goes through the first rule its type and condition match (none: ``ignored``). The rule
names the ticket and a de-duplication key; the key's ``integration_occurrence`` row decides:

- the first event of a problem inserts the row and raises the ticket (``created``);
- a repeat while that ticket is open is counted on it (``added``: count + 1, last seen) — no new
  ticket and no Temporal call;
- a repeat once it is finished (resolved, closed, cancelled): within the key's window after the
  last event, ``on_repeat_after_close`` decides — ``reopen`` reopens a resolved ticket (a closed
  or cancelled one has ended for good: a new ticket), ``new_ticket`` raises the next ticket;
  after the window, always a new ticket.

Every decision is taken on the locked occurrence row in one transaction with the event's own row
(unique per source and event id) and its order row; the ticket is created after that commit with
an Idempotency-Key derived from (source, key, generation), so it has a known id from the start
and any retry converges on it. See docs/integrations.md.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

import store.assets
import store.customers
import store.integrations
import store.people
import store.regions
import store.templates
from api.errors import (
    DomainError,
    FieldInvalid,
    Forbidden,
    InvalidTransition,
    NotFound,
    PayloadTooLarge,
    ProblemList,
    Unauthenticated,
)
from api.services import identity, ticket_parties, tickets
from api.services import templates as template_service
from domain import inbound_auth, mapping
from domain.access import can_access_region
from domain.forms import validate_values
from domain.identities import BadIdentity, normalize
from domain.roles import is_machine
from models.customer_tables import Asset, Customer
from models.integration_tables import IntegrationEvent, IntegrationSource
from models.integrations import EventIn, EventResult, MappingSpec, Rule
from models.schemas import AssetLookup, Channel, CustomerLookup, TicketCreate
from models.settings import Settings
from models.template import TemplateVersion
from models.ticket import ActorRef, ReopenInput
from workflows.actions import ACTIONS

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 64 * 1024
MAX_INT = 2**63 - 1  # CEL's int
OPEN = frozenset({"new", "assigned", "in_progress"})
# A ticket set out to be created but not written this long after: its creator failed, the next
# event of the problem creates it (converging on the same id).
STALL = timedelta(seconds=30)


# --- authentication and shape ---


async def _verified(session: AsyncSession, code: str, headers: Mapping[str, str], raw: bytes) -> IntegrationSource:
    """The source, if it is active and signed ``raw``; else 401 and a log line, nothing written."""
    row = await store.integrations.source(session, code)
    secrets = []
    if row is not None and row.active:
        secrets = [row.secret]
        if row.previous_secret and row.previous_valid_until and row.previous_valid_until > datetime.now(UTC):
            secrets.append(row.previous_secret)
    try:
        if not secrets:
            raise inbound_auth.BadSignature("unknown or inactive source")
        inbound_auth.verify(
            secrets,
            headers.get(inbound_auth.TIMESTAMP_HEADER),
            headers.get(inbound_auth.SIGNATURE_HEADER),
            raw,
        )
    except inbound_auth.BadSignature as exc:
        log.warning("integration event refused: source=%r: %s", code[:40], exc.reason)
        raise Unauthenticated("the event is not signed by a known source") from None
    assert row is not None
    return row


def _parse(raw: bytes) -> EventIn:
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProblemList(
            [{"loc": ["body"], "msg": f"not valid JSON: {str(exc)[:200]}", "type": "json_invalid"}]
        ) from None
    try:
        event = EventIn.model_validate(data)
    except ValidationError as exc:
        raise ProblemList(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None
    if event.occurred_at.tzinfo is None:
        raise FieldInvalid("occurred_at", "must include a timezone offset", "timezone_missing")
    if (where := _big_int(event.data, ["data"])) is not None:
        raise ProblemList([{"loc": ["body", *where], "msg": f"integers are at most {MAX_INT}", "type": "too_large"}])
    return event


def _big_int(value: Any, path: list[str | int]) -> list[str | int] | None:
    todo: list[tuple[list[str | int], Any]] = [(path, value)]
    while todo:
        at, item = todo.pop()
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            return at
        if isinstance(item, dict):
            todo.extend(([*at, k], v) for k, v in item.items())
        elif isinstance(item, list):
            todo.extend(([*at, i], v) for i, v in enumerate(item))
    return None


def _document(event: EventIn) -> dict[str, Any]:
    """The event as rules see it: JSON paths and conditions read this."""
    return {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "data": event.data,
    }


async def _machine(session: AsyncSession, source: IntegrationSource) -> ActorRef:
    row = await store.people.get(session, source.actor_id)
    if row is None or not row.active or not is_machine(row.roles):
        raise Forbidden(f"source {source.code!r} has no active machine account to act as")
    return identity.actor_ref(row)


# --- what a rule makes of one ---


@dataclass
class Plan:
    """The ticket, order and de-duplication key one event asks for (nothing written yet)."""

    rule: Rule
    mapping_version: int
    body: TicketCreate
    key: str
    key_values: list[Any]
    order: dict[str, Any] | None


class _Problems:
    def __init__(self, index: int) -> None:
        self.at: list[str | int] = ["mapping", "rules", index]
        self.items: list[dict[str, Any]] = []

    def add(self, source: Any, part: tuple[str | int, ...], msg: str, type_: str) -> None:
        """A problem at the event's field a path read, else at the rule's part."""
        loc = ["body", *mapping.path_loc(source)] if mapping.is_path(source) else [*self.at, *part]
        self.items.append({"loc": loc, "msg": msg, "type": type_})


async def _plan(
    session: AsyncSession, source: IntegrationSource, machine: ActorRef, index: int, version: int, rule: Rule, doc: Any
) -> Plan:
    """What ``rule`` makes of the event, checked as far as it can be before anything is written
    (form values, region, customer and asset), or one 422 naming each problem."""
    problems = _Problems(index)
    row = await store.templates.latest(session, rule.template)
    if row is None:
        problems.add(None, ("template",), f"unknown template {rule.template!r}", "unknown_template")
        raise ProblemList(problems.items)
    template = template_service.to_version(row)
    asset = await _asset(session, machine, rule, doc)
    customer = await _customer(session, machine, rule, doc, problems)
    owner = customer
    if asset is not None:
        owner = owner or await store.customers.get(session, asset.customer_id)
        if customer is not None and asset.customer_id not in await store.customers.family(session, customer.id):
            problems.add(
                rule.customer and rule.customer.path,
                ("customer",),
                "the asset belongs to another customer",
                "asset_of_another_customer",
            )
    region = await _region(session, machine, rule, doc, asset, customer, problems)
    fields = _fields(template, machine, rule, doc, asset, problems)
    values = mapping.dedup_values(rule, doc)
    for path, value in zip(rule.dedup.key, values, strict=True):
        if value is None:
            problems.add(path, ("dedup", "key"), f"the de-duplication key needs {path}: it is missing", "missing")
    external_ref = mapping.value_of(rule.external_ref, doc) if rule.external_ref else None
    if external_ref is not None and (not isinstance(external_ref, str | int) or len(str(external_ref)) > 200):
        problems.add(
            rule.external_ref,
            ("external_ref",),
            "an external reference is text of at most 200 characters",
            "invalid_value",
        )
    order = _order(rule, doc, owner, asset, problems)
    if problems.items:
        raise ProblemList(problems.items)
    title = mapping.render(rule.title, doc).strip()[:200] or f"{doc['type']} from {source.name}"[:200]
    try:
        body = TicketCreate(
            ticket_type=rule.template,
            region=region,
            title=title,
            description=mapping.render(rule.description, doc)[:10_000] if rule.description else "",
            priority=rule.priority,
            channel=Channel(source.channel),
            external_ref=str(external_ref) if external_ref is not None else None,
            reporter=source.name[:200],
            fields=fields,
            customer=CustomerLookup(id=customer.id) if customer is not None else None,
            asset=AssetLookup(id=asset.id) if asset is not None else None,
        )
    except ValidationError as exc:
        raise ProblemList(
            [{"loc": [*problems.at, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None
    return Plan(rule, version, body, mapping.dedup_key(rule.name, values), mapping.shown_values(values), order)


async def _asset(session: AsyncSession, machine: ActorRef, rule: Rule, doc: Any) -> Asset | None:
    """The asset with the event's serial, when there is one the source may see."""
    serial = mapping.pick(rule.asset.serial, doc) if rule.asset is not None else None
    if not isinstance(serial, str) or not serial or len(serial) > 64:
        return None
    asset = await store.assets.by_serial(session, serial)
    return asset if asset is not None and can_access_region(machine, asset.region) else None


async def _customer(
    session: AsyncSession, machine: ActorRef, rule: Rule, doc: Any, problems: _Problems
) -> Customer | None:
    """The customer the event names, when known (a ticket for an unknown one has none)."""
    if rule.customer is None:
        return None
    value = mapping.pick(rule.customer.path, doc)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) > 254:
        problems.add(rule.customer.path, ("customer",), f"not a {rule.customer.kind}", "bad_identity")
        return None
    kind = rule.customer.kind
    if kind == "id":
        found = await store.customers.get(session, str(value))
    else:
        try:
            found = await store.customers.resolve(session, kind, normalize(kind, str(value)))
        except BadIdentity as exc:
            problems.add(rule.customer.path, ("customer",), str(exc), "bad_identity")
            return None
    return found if found is not None and can_access_region(machine, found.region) else None


async def _region(
    session: AsyncSession,
    machine: ActorRef,
    rule: Rule,
    doc: Any,
    asset: Asset | None,
    customer: Customer | None,
    problems: _Problems,
) -> str | None:
    value = mapping.value_of(rule.region, doc) if rule.region is not None else None
    if value is None and rule.region is None:
        value = asset.region if asset is not None else customer.region if customer is not None else None
    if value is None:
        where = rule.region or (rule.asset and rule.asset.serial) or (rule.customer and rule.customer.path)
        problems.add(
            where, ("region",), "no region: neither the rule nor a known asset or customer gives one", "missing"
        )
        return None
    if not isinstance(value, str) or len(value) > 32 or await store.regions.get(session, value) is None:
        problems.add(rule.region, ("region",), f"unknown region {str(value)[:40]!r}", "unknown_region")
        return None
    if not can_access_region(machine, value):
        problems.add(rule.region, ("region",), f"the source may not raise tickets in {value!r}", "region_not_allowed")
        return None
    return value


def _fields(
    template: TemplateVersion, machine: ActorRef, rule: Rule, doc: Any, asset: Asset | None, problems: _Problems
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, source in rule.fields.items():
        f = template.spec.field(name)
        if f is None:
            problems.add(None, ("fields", name), f"{rule.template} has no form field {name!r}", "unknown_field")
            continue
        value = mapping.form_value(f, source, doc)
        if value is not None:
            fields[name] = value
    _, found = validate_values(
        template.spec, ticket_parties.from_asset(template.spec, fields, asset), roles=machine.roles, intake=True
    )
    for name, msg, type_ in found:
        given = rule.fields.get(name)
        where = next((v for v in given.values() if mapping.is_path(v)), None) if isinstance(given, dict) else given
        problems.add(where, ("fields", name), f"{name}: {msg}", type_)
    return fields


def _order(
    rule: Rule, doc: Any, owner: Customer | None, asset: Asset | None, problems: _Problems
) -> dict[str, Any] | None:
    """The customer_order row the event writes (None: no order in the rule, or no known customer)."""
    spec = rule.order
    if spec is None or owner is None:
        return None
    ref = mapping.pick(spec.external_ref, doc)
    if not isinstance(ref, str | int) or isinstance(ref, bool) or not str(ref) or len(str(ref)) > 200:
        problems.add(
            spec.external_ref,
            ("order", "external_ref"),
            "an order reference is text of at most 200 characters",
            "invalid_value",
        )
        return None
    values: dict[str, Any] = {"source_ref": str(ref), "customer_id": owner.id}
    if spec.amount is not None and (amount := mapping.pick(spec.amount, doc)) is not None:
        number = _decimal(amount)
        if number is None:
            problems.add(spec.amount, ("order", "amount"), "an amount is a decimal number", "invalid_value")
        else:
            values["amount"] = number
    if spec.currency is not None and (currency := mapping.value_of(spec.currency, doc)) is not None:
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            problems.add(spec.currency, ("order", "currency"), "a currency is an ISO 4217 code", "invalid_value")
        else:
            values["currency"] = currency.upper()
    if spec.status is not None and (status := mapping.value_of(spec.status, doc)) is not None:
        values["status"] = str(status)[:32]
    placed = (mapping.pick(spec.placed_at, doc) if spec.placed_at else None) or doc["occurred_at"]
    try:
        values["placed_at"] = datetime.fromisoformat(placed) if isinstance(placed, str) else None
    except ValueError:
        values["placed_at"] = None
    if values["placed_at"] is None or values["placed_at"].tzinfo is None:
        problems.add(spec.placed_at, ("order", "placed_at"), "an ISO 8601 date-time with a timezone", "invalid_value")
    if spec.summary is not None:
        values["summary"] = mapping.render(spec.summary, doc)[:500]
    if asset is not None:
        values["asset_id"] = asset.id
    values["data"] = {"event_id": doc["event_id"], "type": doc["type"]}
    return values


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal) or len(str(value)) > 40:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and abs(number) < Decimal(10) ** 14 else None


# --- the decision ---


@dataclass
class Decision:
    row_id: int  # the event's row
    outcome: str
    ticket_id: str | None = None
    count: int | None = None
    generation: int = 0
    ticket_key: str | None = None  # set when this event is to create the ticket
    repeat: IntegrationEvent | None = None  # the event was taken before: its row
    actor_id: str = ""  # the source's machine account: ticket keys are scoped to it


def ticket_key(code: str, key: str, generation: int) -> str:
    """The Idempotency-Key a problem's ticket of this generation is created with."""
    return f"integration:{code}:{key[:40]}:{generation}"


def _ticket_id(actor_id: str, key: str) -> str:
    return tickets.ticket_id_for(actor_id, key)  # as intake derives it from the caller's Idempotency-Key


async def _claim(session: AsyncSession, code: str, event: EventIn, now: datetime) -> Decision:
    """The event's row, inserted (or a rejected one taken again, locked); ``repeat`` when taken before."""
    row_id = await store.integrations.claim_event(session, code, event.event_id, event.type, now)
    if row_id is not None:
        return Decision(row_id, "rejected")
    existing = await store.integrations.event(session, code, event.event_id, lock=True)
    assert existing is not None and existing.id is not None
    if existing.outcome != "rejected":
        return Decision(existing.id, existing.outcome, repeat=existing)
    return Decision(existing.id, "rejected")


async def _decide(
    session: AsyncSession, code: str, plan: Plan, event: EventIn, now: datetime, actor_id: str
) -> Decision:
    """Claim the event, count it on its problem's occurrence (locked) and say what to do; one
    transaction with the event's row and the order row."""
    decision = await _claim(session, code, event, now)
    decision.actor_id = actor_id
    if decision.repeat is not None:
        await session.rollback()
        return decision
    first = ticket_key(code, plan.key, 1)
    new_row: dict[str, Any] = {
        "source": code,
        "dedup_key": plan.key,
        "rule": plan.rule.name,
        "key_values": plan.key_values,
        "generation": 1,
        "ticket_id": _ticket_id(actor_id, first),
        "count": 1,
        "first_seen": now,
        "last_seen": now,
        "last_event_id": event.event_id,
        "claimed_at": now,
    }
    if await store.integrations.insert_occurrence(session, new_row):
        decision.outcome, decision.ticket_id, decision.count, decision.generation = (
            "created",
            _ticket_id(actor_id, first),
            1,
            1,
        )
        decision.ticket_key = first
    else:
        locked = await store.integrations.lock_occurrence(session, code, plan.key)
        assert locked is not None
        occ, status = locked
        assert occ.id is not None
        change: dict[str, Any] = {"count": occ.count + 1, "last_seen": now, "last_event_id": event.event_id}
        decision.ticket_id, decision.generation, decision.outcome = occ.ticket_id, occ.generation, "added"
        within = now - occ.last_seen <= plan.rule.dedup.window
        if status is None:  # being created; or its creator failed: then this event creates it
            if occ.claimed_at is None or now - occ.claimed_at > STALL:
                change["claimed_at"] = now
                decision.ticket_key = ticket_key(code, plan.key, occ.generation)
        elif status == "resolved" and within and plan.rule.on_repeat_after_close == "reopen":
            decision.outcome = "reopened"
        elif status not in OPEN:
            decision.generation = occ.generation + 1
            decision.ticket_key = ticket_key(code, plan.key, decision.generation)
            decision.ticket_id, decision.outcome = _ticket_id(decision.actor_id, decision.ticket_key), "created"
            change = {**new_row, "generation": decision.generation, "ticket_id": decision.ticket_id}
        decision.count = change["count"]
        await store.integrations.set_occurrence(session, occ.id, **change)
    await store.integrations.set_event(
        session,
        decision.row_id,
        outcome=decision.outcome,
        rule=plan.rule.name,
        mapping_version=plan.mapping_version,
        ticket_id=decision.ticket_id,
        ticket_key=decision.ticket_key,
        count=decision.count,
        detail=None,
        received_at=now,
    )
    if plan.order is not None:
        await _record_order(session, code, plan.order, decision.row_id)
    await session.commit()
    return decision


async def _record_order(session: AsyncSession, code: str, order: dict[str, Any], row_id: int) -> None:
    """Write the event's order row. An order of this source and reference already recorded for a
    customer outside the event customer's family is left as it is — the ticket still goes ahead —
    and the event's record says so (docs/integrations.md, *Orders*)."""
    family = await store.customers.family(session, order["customer_id"])
    if not await store.integrations.upsert_order(session, _order_row(code, order), family):
        note = f"order {code}/{order['source_ref']} is recorded for another customer: left unchanged"
        log.warning("integration %s: %s (event customer %s)", code, note, order["customer_id"])
        await store.integrations.set_event(session, row_id, detail={"order": note})


def _order_row(code: str, order: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": code,
        "external_ref": order["source_ref"],
        **{k: v for k, v in order.items() if k != "source_ref"},
    }


# --- after the decision ---


async def _create(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    machine: ActorRef,
    code: str,
    plan: Plan,
    decision: Decision,
) -> None:
    """Create the decided ticket (an earlier creation with the same key: that one). A refusal
    (a 4xx) takes the event back: it is ``rejected``, and counted nowhere."""
    assert decision.ticket_key is not None
    try:
        created = await tickets.create_ticket(session, client, settings, machine, plan.body, decision.ticket_key)
    except FieldInvalid as exc:
        if exc.type_ != "idempotency_key_reused":  # created before from another event's data: it exists
            await _take_back(session, code, plan, decision, exc)
            raise
        return
    except DomainError as exc:
        if exc.status_code >= 500:
            raise  # the event stays taken; a delivery sent again creates the ticket
        await _take_back(session, code, plan, decision, exc)
        raise
    if created.ticket.ticket_id != decision.ticket_id:  # never expected: tickets derive ids from keys
        log.error("integration ticket id %s is not the expected %s", created.ticket.ticket_id, decision.ticket_id)


async def _take_back(session: AsyncSession, code: str, plan: Plan, decision: Decision, exc: DomainError) -> None:
    await session.rollback()
    locked = await store.integrations.lock_occurrence(session, code, plan.key)
    occ = locked[0] if locked is not None else None
    if occ is not None and occ.id is not None and occ.ticket_id == decision.ticket_id:
        if occ.count <= 1 and occ.generation == 1:
            await store.integrations.drop_occurrence(session, occ.id)
        else:
            await store.integrations.set_occurrence(session, occ.id, count=max(occ.count - 1, 0), claimed_at=None)
    await store.integrations.set_event(
        session, decision.row_id, outcome="rejected", ticket_id=None, ticket_key=None, count=None, detail=exc.body()
    )
    await session.commit()


async def _reopen(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    machine: ActorRef,
    code: str,
    event: EventIn,
    plan: Plan,
    decision: Decision,
) -> None:
    """Reopen the resolved ticket as the source's account; if it cannot be (it was closed
    meanwhile, or the account may not), the problem gets a new ticket instead."""
    assert decision.ticket_id is not None
    reason = f"{code} reported {event.type} again (event {event.event_id})"
    try:
        await tickets.act(
            session,
            client,
            settings,
            machine,
            decision.ticket_id,
            ACTIONS["reopen"],
            ReopenInput(actor=machine, reason=reason),
            idempotency_key=f"integration:{code}:{event.event_id}",
            machine_reopen=True,
        )
        return
    except (Forbidden, InvalidTransition, NotFound) as exc:
        log.info("integration %s: ticket %s not reopened (%s): a new ticket", code, decision.ticket_id, exc.detail)
    await session.rollback()
    locked = await store.integrations.lock_occurrence(session, code, plan.key)
    assert locked is not None and locked[0].id is not None
    occ, occ_id = locked[0], locked[0].id
    decision.outcome = "added"  # counted on the finished ticket, unless the problem moves on now
    if occ.generation == decision.generation:  # nobody moved it on meanwhile: the next generation
        decision.generation += 1
        decision.ticket_key = ticket_key(code, plan.key, decision.generation)
        decision.ticket_id, decision.outcome, decision.count = (
            _ticket_id(decision.actor_id, decision.ticket_key),
            "created",
            1,
        )
        now = datetime.now(UTC)
        await store.integrations.set_occurrence(
            session,
            occ_id,
            generation=decision.generation,
            ticket_id=decision.ticket_id,
            count=1,
            first_seen=now,
            last_seen=now,
            claimed_at=now,
        )
    await store.integrations.set_event(
        session,
        decision.row_id,
        outcome=decision.outcome,
        ticket_id=decision.ticket_id,
        ticket_key=decision.ticket_key,
        count=decision.count,
    )
    await session.commit()
    if decision.ticket_key is not None:
        await _create(session, client, settings, machine, code, plan, decision)


# --- the entry point ---


@dataclass
class Received:
    status_code: int
    result: EventResult


def _result(event_id: str, row: IntegrationEvent | Decision, rule: str | None, repeat: bool = False) -> EventResult:
    return EventResult(
        event_id=event_id,
        outcome=row.outcome,  # type: ignore[arg-type]
        rule=rule,
        ticket_id=row.ticket_id,
        count=row.count,
        repeat=repeat,
    )


async def receive(
    session: AsyncSession, client: Client, settings: Settings, code: str, headers: Mapping[str, str], raw: bytes
) -> Received:
    """Take one signed event (see the module docstring)."""
    if len(raw) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"an event is at most {MAX_EVENT_BYTES} bytes")
    source = await _verified(session, code, headers, raw)
    event = _parse(raw)
    machine = await _machine(session, source)
    doc = _document(event)
    taken = await store.integrations.event(session, code, event.event_id)
    if taken is not None and taken.outcome != "rejected":
        return await _again(session, client, settings, machine, source, taken, doc)
    latest = await store.integrations.latest_mapping(session, code)
    spec = MappingSpec.model_validate(latest.spec) if latest is not None else None
    match, skipped = mapping.first_match(spec, doc) if spec is not None else (None, ["no mapping published"])
    now = datetime.now(UTC)
    if match is None:
        decision = await _claim(session, code, event, now)
        if decision.repeat is not None:
            await session.rollback()
            return Received(200, _result(event.event_id, decision.repeat, decision.repeat.rule, repeat=True))
        detail = {"skipped": skipped} if skipped else None
        version = latest.version if latest is not None else None
        await store.integrations.set_event(
            session, decision.row_id, outcome="ignored", mapping_version=version, detail=detail, received_at=now
        )
        await session.commit()
        return Received(202, EventResult(event_id=event.event_id, outcome="ignored"))
    assert latest is not None
    try:
        plan = await _plan(session, source, machine, match.index, latest.version, match.rule, doc)
    except ProblemList as exc:
        await session.rollback()
        if (
            taken := await store.integrations.record_rejected(
                session, code, event.event_id, event.type, now, exc.body()
            )
        ) is not None:
            await session.rollback()
            return await _again(session, client, settings, machine, source, taken, doc)
        await session.commit()
        raise
    decision = await _decide(session, code, plan, event, now, machine.id)
    if decision.repeat is not None:
        return await _again(session, client, settings, machine, source, decision.repeat, doc)
    if decision.outcome == "reopened":
        await _reopen(session, client, settings, machine, code, event, plan, decision)
    elif decision.ticket_key is not None:
        await _create(session, client, settings, machine, code, plan, decision)
    status = 201 if decision.outcome == "created" else 200
    return Received(status, _result(event.event_id, decision, plan.rule.name))


async def _again(
    session: AsyncSession,
    client: Client,
    settings: Settings,
    machine: ActorRef,
    source: IntegrationSource,
    taken: IntegrationEvent,
    doc: Any,
) -> Received:
    """A delivery of an event taken before: its first outcome. If that event was to create its
    ticket and the ticket is not there (the start failed), it is created now, with the same key."""
    if (
        taken.ticket_key
        and taken.ticket_id
        and await store.integrations.ticket_status(session, taken.ticket_id) is None
    ):
        row = await store.integrations.mapping_version(session, source.code, taken.mapping_version or 0)
        spec = MappingSpec.model_validate(row.spec) if row is not None else None
        index = next((i for i, r in enumerate(spec.rules) if r.name == taken.rule), None) if spec else None
        if spec is not None and index is not None and taken.id is not None:
            plan = await _plan(session, source, machine, index, taken.mapping_version or 0, spec.rules[index], doc)
            decision = Decision(
                taken.id, taken.outcome, taken.ticket_id, taken.count, ticket_key=taken.ticket_key, actor_id=machine.id
            )
            await _create(session, client, settings, machine, source.code, plan, decision)
    return Received(
        202 if taken.outcome == "ignored" else 200, _result(doc["event_id"], taken, taken.rule, repeat=True)
    )
