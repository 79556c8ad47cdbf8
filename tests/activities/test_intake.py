"""``intake.open_ticket`` against the dev server and the real database: it opens the ticket the
way POST /tickets does (template, region calendar, the asset's fields, customer and contract
SLA, the creator), once per business key — a repeat, or several at once, open one ticket — and
refuses what can never succeed with a non-retryable ``Intake:…`` error, leaving no row behind.

The activity runs in ``ActivityEnvironment`` with the dev server's client and the task queue of
the ``stack`` worker, which runs the ticket workflows it starts (their projection is what the
API then reads)."""

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import col, func, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import store.tickets
from activities import intake
from activities.resources import database
from domain.ids import ticket_id_for_key
from models import search_attributes as attrs
from models.common import Priority
from models.db import Database
from models.intake import OpenedTicket, OpenTicket
from models.tables import Ticket
from models.ticket import TicketState
from tests.conftest import Stack

pytestmark = pytest.mark.asyncio


def env_for(stack: Stack) -> ActivityEnvironment:
    env = ActivityEnvironment(client=stack.client)
    env.info = dataclasses.replace(env.info, task_queue=stack.settings.task_queue)
    return env


async def open_ticket(stack: Stack, **given: Any) -> OpenedTicket:
    body = {"ticket_type": "general", "region": "east", "title": "Quarterly inspection", **given}
    body.setdefault("key", f"test:{uuid.uuid4().hex}")
    return await env_for(stack).run(intake.open_ticket, OpenTicket(**body))


async def refusal(stack: Stack, **given: Any) -> ApplicationError:
    key = f"test:{uuid.uuid4().hex}"
    with pytest.raises(ApplicationError) as caught:
        await open_ticket(stack, key=key, **given)
    assert caught.value.non_retryable
    async with database().session() as s:
        assert await store.tickets.get(s, ticket_id_for_key(key)) is None  # nothing written
    return caught.value


async def count_tickets(db: Database, key: str) -> int:
    async with db.session() as s:
        return (await s.exec(select(func.count()).where(col(Ticket.idempotency_key) == key))).one()


async def test_opens_a_ticket_once_per_key(stack: Stack, db: Database):
    key = f"schedule:test-{uuid.uuid4().hex[:8]}:2026-12-05T00:00:00Z"
    first = await open_ticket(stack, key=key, description="Check the filters", priority="high")
    assert first == OpenedTicket(ticket_id=ticket_id_for_key(key), new=True)

    ticket = await stack.until(first.ticket_id, lambda t: t.get("assignee"), actor="admin")
    assert ticket["ticket_type"] == "general" and ticket["region"] == "east"
    assert ticket["priority"] == "high" and ticket["channel"] == "system"
    assert ticket["created_by"] == "system" and ticket["description"] == "Check the filters"
    assert ticket["workflow_id"] == f"ticket-{first.ticket_id}"
    described = await stack.client.get_workflow_handle(f"ticket-{first.ticket_id}").describe()
    assert described.typed_search_attributes.get(attrs.TICKET_REGION) == "east"
    assert described.typed_search_attributes.get(attrs.TICKET_TYPE) == "general"
    assert described.task_queue == stack.settings.task_queue

    again = await open_ticket(stack, key=key, title="A different title")
    assert again == OpenedTicket(ticket_id=first.ticket_id, new=False)
    assert await count_tickets(db, key) == 1
    # Another region's agent does not see it; the region's does.
    assert (await stack.get(first.ticket_id, "agent-chen")).status_code == 404
    assert (await stack.get(first.ticket_id, "agent-wang")).status_code == 200


async def test_several_at_once_open_one_ticket(stack: Stack, db: Database):
    key = f"test:race-{uuid.uuid4().hex}"
    results = await asyncio.gather(*(open_ticket(stack, key=key) for _ in range(6)))
    assert {r.ticket_id for r in results} == {ticket_id_for_key(key)}
    assert [r.new for r in results].count(True) == 1
    assert await count_tickets(db, key) == 1
    await stack.client.get_workflow_handle(f"ticket-{ticket_id_for_key(key)}").describe()  # started


async def test_asset_fills_fields_customer_and_contract_sla(stack: Stack):
    opened = await open_ticket(
        stack, ticket_type="equipment_repair", asset_id="ast_demo0001", fields={"fault": "noise"}, title="Service"
    )
    ticket = await stack.until(opened.ticket_id, lambda t: t.get("source") == "workflow", actor="admin")
    assert ticket["fields"]["device_id"] == "CMP-000001"  # the template's from_asset
    assert ticket["fields"]["site"]["lat"] == pytest.approx(31.2069)
    assert ticket["customer_id"] == "cus_demo0001" and ticket["asset_id"] == "ast_demo0001"
    assert ticket["reporter"] == "王建国"
    assert ticket["contract_sla"]["contract"] == "SC-DEMO-0001" and ticket["contract_sla"]["tier"] == "gold"
    assert ticket["priority"] == "high"  # the template's default


async def test_created_by_an_active_person_or_else_the_system(stack: Stack):
    by_person = await open_ticket(stack, created_by="sup-zhou")
    assert (await stack.until(by_person.ticket_id, lambda t: True, actor="admin"))["created_by"] == "sup-zhou"
    by_nobody = await open_ticket(stack, created_by="no-such-person")
    assert (await stack.until(by_nobody.ticket_id, lambda t: True, actor="admin"))["created_by"] == "system"


async def test_a_row_whose_workflow_never_started_is_opened(stack: Stack, db: Database):
    """An attempt that wrote the intake row and died before the start: the retry starts it."""
    key = f"test:crashed-{uuid.uuid4().hex}"
    ticket_id = ticket_id_for_key(key)
    now = datetime.now(UTC)
    orphan = TicketState(
        ticket_id=ticket_id,
        ticket_type="general",
        region="east",
        priority=Priority.NORMAL,
        title="Orphan",
        created_by="system",
        created_at=now,
        updated_at=now,
    )
    async with db.session() as s:
        await store.tickets.insert_intake(s, orphan, key, "x")
        await s.commit()
    opened = await open_ticket(stack, key=key)
    assert opened == OpenedTicket(ticket_id=ticket_id, new=True)
    await stack.client.get_workflow_handle(f"ticket-{ticket_id}").describe()
    assert await count_tickets(db, key) == 1


async def test_refusals_are_final_and_write_nothing(stack: Stack):
    bad = await refusal(stack, ticket_type="equipment_repair", asset_id="ast_demo0001", fields={"fault": "fire"})
    assert bad.type == intake.INVALID_FIELDS
    assert bad.details[0]["problems"] == [
        {"field": "fault", "msg": bad.details[0]["problems"][0]["msg"], "type": "invalid_value"}
    ]
    missing = await refusal(stack, ticket_type="equipment_repair", fields={})
    assert missing.type == intake.INVALID_FIELDS
    assert {p["field"] for p in missing.details[0]["problems"]} == {"device_id", "fault"}
    unknown_field = await refusal(stack, fields={"colour": "red"})
    assert unknown_field.type == intake.INVALID_FIELDS
    assert (await refusal(stack, ticket_type="no_such_type")).type == intake.UNKNOWN_TICKET_TYPE
    assert (await refusal(stack, region="atlantis")).type == intake.UNKNOWN_REGION
    assert (await refusal(stack, asset_id="ast_nope")).type == intake.UNKNOWN_ASSET
    assert (await refusal(stack, customer_id="cus_nope")).type == intake.UNKNOWN_CUSTOMER
    other = await refusal(stack, asset_id="ast_demo0001", customer_id="cus_demo0002")
    assert other.type == intake.ASSET_OF_ANOTHER_CUSTOMER
    # discount_approval is raised by agents only (channels: [agent]).
    channel = await refusal(
        stack, ticket_type="discount_approval", fields={"customer": "x", "amount": "10", "justification": "y"}
    )
    assert channel.type == intake.CHANNEL_NOT_ALLOWED
