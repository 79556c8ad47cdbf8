"""Issue #13: the read model can be rebuilt from the ticket workflows (``python -m cli
rebuild-read-model``), and a rebuild sends nothing again.

On the ``stack`` (real app, dev server, in-process worker, real database): a ticket's rows are
deleted or corrupted, the command re-projects them from the workflow's history (every run of
its continue-as-new chain), and the rows come back as the live projection wrote them, while no
customer message, webhook delivery or notification is queued again.
"""

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.client import Client, WorkflowHistory

from cli import rebuild
from models.db import Database
from models.demo_customers import WALKTHROUGH_ASSET, WALKTHROUGH_PHONE
from models.ticket import ActorRef, Priority, TicketInput
from store import subscriptions as subscription_store
from store import templates as template_store
from tests.api.test_customer_to_statement import scan
from tests.e2e.helpers import ROOT, child_env
from workflows.ticket import TicketWorkflow, workflow_id

pytestmark = pytest.mark.asyncio

HOOK = "http://127.0.0.1:9/rebuild-read-model"  # never reached: the stack runs no delivery loop
AGENT = ActorRef(id="agent-wang", roles=["agent"], regions=["east"])
HISTORIES = Path(__file__).parents[1] / "histories"


# --- what the database holds for a ticket ---


async def _tables_with_ticket_id(db: Database) -> list[str]:
    """Every table of the schema with a ``ticket_id`` column (outboxes, events, statements…)."""

    def names(conn: sa.Connection) -> list[str]:
        inspect = sa.inspect(conn)
        return sorted(
            t for t in inspect.get_table_names() if "ticket_id" in {c["name"] for c in inspect.get_columns(t)}
        )

    async with db.engine.connect() as conn:
        return await conn.run_sync(names)


async def read_model(db: Database, tid: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The ticket row and its events (without the events' surrogate ids), in seq order."""
    async with db.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM ticket WHERE id = :t"), {"t": tid})).mappings().first()
        events = (
            (await conn.execute(sa.text("SELECT * FROM ticket_event WHERE ticket_id = :t ORDER BY seq"), {"t": tid}))
            .mappings()
            .all()
        )
    return (dict(row) if row else None), [{k: v for k, v in e.items() if k != "id"} for e in events]


async def counts(db: Database, tid: str) -> dict[str, int]:
    """How many rows each table with a ``ticket_id`` holds for the ticket."""
    out = {}
    async with db.engine.connect() as conn:
        for table in await _tables_with_ticket_id(db):
            q = sa.text(f'SELECT count(*) FROM "{table}" WHERE ticket_id = :t')  # names from the schema
            out[table] = (await conn.execute(q, {"t": tid})).scalar_one()
    return out


async def lose(db: Database, tid: str) -> None:
    """Lose the ticket as a restore from a backup taken before it existed would: its row, its
    events, what the projection queued with them (customer messages, webhook deliveries) and
    whatever references the row (its survey…), in one transaction."""

    def referencing(conn: sa.Connection) -> list[str]:
        inspect = sa.inspect(conn)
        return [
            t
            for t in inspect.get_table_names()
            if any(fk["referred_table"] == "ticket" for fk in inspect.get_foreign_keys(t))
        ]

    async with db.engine.begin() as conn:
        for table in [*await conn.run_sync(referencing), "webhook_delivery"]:
            await conn.execute(sa.text(f'DELETE FROM "{table}" WHERE ticket_id = :t'), {"t": tid})
        await conn.execute(sa.text("DELETE FROM ticket WHERE id = :t"), {"t": tid})
    assert await read_model(db, tid) == (None, [])


def cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cli …`` in a process of its own, configured like the service."""
    env = child_env(
        database_url=stack.settings.database_url,
        temporal_address=stack.settings.temporal_address,
        temporal_namespace="default",
    )
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


async def subscribe(stack, ticket_type: str) -> str:
    r = await stack.http.post(
        "/subscriptions",
        json={
            "url": HOOK,
            "events": ["created", "assigned", "status_changed", "resolved", "closed"],
            "filters": {"ticket_types": [ticket_type]},
        },
        headers=stack.as_actor("admin"),
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
async def unsubscribe(db):
    """The subscriptions a test makes go with it (the database is shared by the session)."""
    made: list[str] = []
    yield made
    async with db.session() as s:
        for sub in made:
            await subscription_store.delete(s, sub)
        await s.commit()


async def ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


async def until_done(client: Client, tid: str) -> None:
    """The ticket's workflow (the latest run) has completed: its history is final."""
    await asyncio.wait_for(client.get_workflow_handle(workflow_id(tid)).result(), timeout=30)


# --- the tests ---


async def test_a_lost_ticket_is_rebuilt_identical_and_nothing_is_sent_again(stack, db, unsubscribe):
    """A repair's whole life — a customer's QR scan, dispatch, diagnosis with a part reserved,
    repair with a comment, parts consumed, a statement, the customer's confirmation with a
    rating, close — then its rows are lost (as in a restore from a backup taken before it) and
    ``python -m cli rebuild-read-model --ticket`` (its own process) writes the ticket row and
    every event again, to the byte, while the customer is not told again and no subscriber
    hears of it again."""
    unsubscribe.append(await subscribe(stack, "equipment_repair"))
    made = await scan(
        stack,
        {
            "submission_id": f"rebuild-{uuid.uuid4().hex[:12]}",
            "qr_code": WALKTHROUGH_ASSET.qr_code,
            "phone": WALKTHROUGH_PHONE,
            "fault": "overheating",
            "text": "Compressor overheating",
        },
    )
    tid = made["ticket_id"]
    await stack.until(tid, lambda t: t["nodes"].get("diagnose", {}).get("status") in ("assigned", "open"))
    await ok(await stack.act(tid, "assign", "sup-zhou", assignee="eng-li", node="diagnose"))
    await ok(await stack.act(tid, "start", "eng-li"))
    diagnosis = {"diagnosis": "fan bearing worn", "parts_needed": True, "part_sku": "FAN-CMP-120", "part_quantity": 1}
    await ok(await stack.act(tid, "complete", "eng-li", fields=diagnosis))
    await stack.until(tid, lambda t: "repair" in t["active"])
    await ok(await stack.act(tid, "claim", "eng-li"))
    await ok(await stack.act(tid, "start", "eng-li"))
    await ok(await stack.act(tid, "comment", "eng-li", text="bearing replaced, running a test cycle"))
    work = {"minutes_worked": 75, "repair_cost": {"amount": "420.00", "currency": "CNY"}}
    await ok(await stack.act(tid, "complete", "eng-li", fields=work))
    await stack.until(tid, lambda t: "confirm" in t["active"])
    r = await stack.http.post(
        f"/tickets/{tid}/events",
        json={"name": "customer_confirmed", "fields": {"satisfaction": 5}},
        headers=stack.as_actor("gateway-qr"),
    )
    assert r.status_code == 202, r.text
    await stack.until(tid, lambda t: t["status"] == "resolved")
    assert (await ok(await stack.act(tid, "close", "agent-wang")))["status"] == "closed"
    await until_done(stack.client, tid)

    ticket, events = await read_model(db, tid)
    assert ticket is not None and ticket["status"] == "closed" and ticket["satisfaction"] == 5
    assert [e["action"] for e in events] == [
        "created", "task_opened", "dispatched", "assign", "start", "complete", "gateway", "reserve_parts",
        "task_opened", "claim", "start", "comment", "complete", "consume_parts", "settle", "waiting",
        "event:customer_confirmed", "wait_over", "resolved", "survey_sent", "close", "follow_up_scheduled",
    ]  # fmt: skip
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)) == list(range(1, ticket["seq"] + 1))
    told = await counts(db, tid)
    # The projection queued customer messages and webhook deliveries for this ticket: a rebuild
    # that projected the same events the ordinary way would queue them all again.
    assert told["customer_message"] > 0 and told["webhook_delivery"] > 0, told

    await lose(db, tid)
    left = await counts(db, tid)
    assert left["customer_message"] == left["webhook_delivery"] == left["ticket_event"] == 0

    done = cli(stack, "rebuild-read-model", "--ticket", tid)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{tid}  rebuilt  {len(events)} events, closed, 1 run",
        "1 ticket: 1 rebuilt, 0 partial, 0 failed",
    ], done.stdout + done.stderr

    rebuilt, rebuilt_events = await read_model(db, tid)
    assert rebuilt_events == events
    # Identical, but for what only the API knew at intake and no workflow carries: the caller's
    # de-duplication key and the hash of its request (a rebuilt row has neither).
    assert rebuilt == {**ticket, "idempotency_key": None, "request_hash": None}
    # Nothing queued again: no customer message, no webhook delivery, no notification.
    assert await counts(db, tid) == {**left, "ticket_event": len(events)}


async def test_a_ticket_that_continued_as_new_rebuilds_with_every_event_of_every_run(stack, db):
    """A ticket with a short history limit runs through several runs; deleting its events and
    rebuilding (``--all``, narrowed by a visibility query to this test's task queue) brings back
    every event of every run; its row is left as it was (the same seq: rewritten the same)."""
    async with db.session() as s:
        row = await template_store.latest(s, "general")
        assert row is not None
        template = template_store.to_version(row)
    tid = f"TREBUILD{uuid.uuid4().hex[:10].upper()}"
    await stack.client.start_workflow(
        TicketWorkflow.run,
        TicketInput(
            ticket_id=tid,
            ticket_type="general",
            template=template,
            region="east",
            priority=Priority.NORMAL,
            title="Chiller noise",
            channel="phone",
            created_by=AGENT,
            created_at=datetime.now(UTC),
            history_limit=40,
        ),
        id=workflow_id(tid),
        task_queue=stack.settings.task_queue,
    )
    await stack.until(tid, lambda t: "work" in t.get("active", []))
    await ok(await stack.act(tid, "claim", "eng-li"))
    for i in range(14):  # the API sends an action that meets the hand-over again, to the next run
        await ok(await stack.act(tid, "comment", "eng-li", text=f"note {i}"))
    await ok(await stack.act(tid, "start", "eng-li"))
    chain = await rebuild.runs(stack.client, tid)
    assert chain.complete and len(chain.histories) >= 3, len(chain.histories)

    ticket, events = await read_model(db, tid)
    assert ticket is not None and ticket["status"] == "in_progress"
    assert [e["action"] for e in events].count("comment") == 14
    assert [e["seq"] for e in events] == list(range(1, ticket["seq"] + 1))
    before = await counts(db, tid)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM ticket_event WHERE ticket_id = :t"), {"t": tid})

    done = cli(stack, "rebuild-read-model", "--all", "--query", f'TaskQueue = "{stack.settings.task_queue}"')
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{tid}  rebuilt  {len(events)} events, in_progress, {len(chain.histories)} runs",
        "1 ticket: 1 rebuilt, 0 partial, 0 failed",
    ], done.stdout + done.stderr
    assert await read_model(db, tid) == (ticket, events)
    assert await counts(db, tid) == before


async def test_a_corrupted_row_and_events_are_put_right_without_telling_anyone(stack, db, unsubscribe):
    """The ticket row's status and assignee are overwritten, one event is altered and another
    deleted, and a subscriber joins afterwards: the rebuild (in process) puts the row and the
    events back as they were — the row keeps what only the API knew — and the new subscriber
    hears nothing of the ticket's past. An unknown ticket fails on its own line."""
    r = await stack.create(title="Pump seal leaking", idempotency_key=f"rebuild-{uuid.uuid4().hex[:10]}")
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: "work" in t["active"])
    for action, body in (("claim", {}), ("comment", {"text": "seal ordered"}), ("start", {})):
        await ok(await stack.act(tid, action, "eng-li", **body))
    ticket, events = await read_model(db, tid)
    assert ticket is not None and ticket["status"] == "in_progress" and ticket["request_hash"]
    before = await counts(db, tid)

    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE ticket SET status = 'closed', assignee = NULL WHERE id = :t"), {"t": tid})
        await conn.execute(
            sa.text(
                "UPDATE ticket_event SET action = 'cancel', to_status = 'cancelled' WHERE ticket_id = :t AND seq = 2"
            ),
            {"t": tid},
        )
        await conn.execute(sa.text("DELETE FROM ticket_event WHERE ticket_id = :t AND seq = 3"), {"t": tid})
    unsubscribe.append(await subscribe(stack, "general"))

    lines: list[str] = []
    summary = await rebuild.rebuild_many(stack.client, db, [tid, "TNOSUCHTICKET"], lines.append)
    assert (summary.rebuilt, summary.failed, summary.ok) == (1, 1, False)
    assert lines[0] == f"{tid}  rebuilt  {len(events)} events, in_progress, 1 run"
    assert lines[1].startswith("TNOSUCHTICKET  failed  RebuildError: no workflow ticket-TNOSUCHTICKET")
    assert await read_model(db, tid) == (ticket, events)
    assert await counts(db, tid) == before  # the new subscriber got no delivery of the past


async def test_a_chain_recorded_by_an_earlier_release_yields_every_change_in_order():
    """Offline, from the replay corpus: the two runs of ``continue_as_new`` (recorded before
    actions were signed, by a worker whose projection was a mock) give back the changes the
    workflow code projected — 1 to 24 in the first run, 25 to 33 in the next — each batch with the
    state after it, the last one closed."""
    chain = [
        WorkflowHistory.from_json("ticket-continue-as-new", (HISTORIES / name).read_text())
        for name in ("continue_as_new.json", "continue_as_new_next_run.json")
    ]
    started = chain[1].events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id == chain[0].run_id
    inputs = await rebuild.projection_inputs(chain)
    assert [e.seq for batch in inputs for e in batch.events] == list(range(1, 34))
    assert all(batch.state.seq == batch.events[-1].seq for batch in inputs)
    assert (inputs[-1].state.status.value, inputs[-1].events[-1].action) == ("closed", "close")
    first_run = await rebuild.projection_inputs(chain[:1])
    assert first_run[-1].events[-1].seq == 24 and first_run == inputs[: len(first_run)]
