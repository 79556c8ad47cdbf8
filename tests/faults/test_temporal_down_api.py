"""Temporal down, seen from the API: clear 503s with ``Retry-After``, answers within the
configured bound, nothing half-created, and the same request creates the ticket once the
server is back.

Cases (each on a dev server of its own, ``tests/faults/server.py``):

- ``test_temporal_down_is_503_with_retry_after_and_nothing_half_created``: the server is
  killed (``kill -9``: connections refused). ``POST /tickets`` (with an ``Idempotency-Key``),
  an action (``comment``) and an event (``customer_photo``) each answer 503 with a
  ``Retry-After`` header and a body saying Temporal is unavailable, within the Temporal
  client's retries (about 10 s; under the action timeout), not hanging. Every table of the
  database holds exactly the rows it held before (the intake row written before the workflow
  start is gone again: no ticket, no event, no idempotency key taken). Once the server is
  back, the same request with the same key creates exactly one ticket (201, its workflow
  running), a repeat answers 200 with it, and the action and the event sent again are taken
  once each.
- ``test_a_hung_temporal_server_holds_no_request``: the server hangs (``kill -STOP``:
  connections open, nothing answers). ``POST /tickets`` answers 503 with ``Retry-After``
  within the action timeout (``action_timeout_s``, 3 s here; it used to wait for the Temporal
  client's 30 s), the action and the event 504 "not applied"; nothing is half-created. Once
  the server runs again, the same key gives exactly one ticket, and the action and the event
  sent while it hung were never applied.
"""

import asyncio
import time
import uuid

import sqlalchemy as sa
from temporalio.client import WorkflowExecutionStatus

from models.db import Database
from tests.faults.server import fault_stack, quiet

# The API must answer within this while Temporal is down (the Temporal client retries an
# unreachable server for at most 10 s; the action timeout in these tests is 20 s).
ANSWER_BOUND_S = 15.0


async def table_counts(db: Database) -> dict[str, int]:
    """Rows in every table of the schema (all that any request could have written)."""
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        return {
            name: (await conn.execute(sa.text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
            for name in sorted(names)
            if name != "alembic_version"
        }


def assert_unavailable(r, what: str) -> None:
    assert r.status_code == 503, f"{what}: {r.status_code} {r.text}"
    assert int(r.headers.get("Retry-After", "0")) >= 1, f"{what}: no Retry-After in {dict(r.headers)}"
    body = r.json()
    assert body["code"] == "unavailable", body
    assert "temporal" in body["detail"].lower(), body


async def test_temporal_down_is_503_with_retry_after_and_nothing_half_created(db, database_url, tmp_path):
    async with fault_stack(database_url, tmp_path) as stack:
        tid = (await stack.create(title="Boiler pressure low")).json()["ticket_id"]
        await stack.until(tid, lambda t: t["active"] == ["work"] and t["seq"] >= 2)
        await quiet(stack.client, [f"ticket-{tid}"])
        before = await table_counts(db)
        body = {"title": "Chiller tripped during the outage", "description": "made once"}
        key = f"temporal-down-{uuid.uuid4().hex[:8]}"

        stack.server.kill()
        began = time.monotonic()
        agent, photo = stack.as_actor("agent-wang"), {"name": "customer_photo", "text": "https://img.example/p1"}
        created, acted, evented = await asyncio.gather(
            stack.create(idempotency_key=key, **body),
            stack.act(tid, "comment", actor="agent-wang", text="checked the valve"),
            stack.http.post(f"/tickets/{tid}/events", json=photo, headers=agent),
        )
        answered = time.monotonic() - began
        assert_unavailable(created, "POST /tickets")
        assert_unavailable(acted, "comment")
        assert_unavailable(evented, "event")
        assert answered < ANSWER_BOUND_S, answered
        assert await table_counts(db) == before  # nothing half-created

        await stack.server.restart()
        made = await stack.create(idempotency_key=key, **body)
        assert made.status_code == 201, made.text
        new = made.json()["ticket_id"]
        again = await stack.create(idempotency_key=key, **body)
        assert again.status_code == 200 and again.json()["ticket_id"] == new, again.text
        after = await table_counts(db)
        assert after["ticket"] == before["ticket"] + 1
        handle = stack.client.get_workflow_handle(f"ticket-{new}")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

        r = await stack.act(tid, "comment", actor="agent-wang", text="checked the valve")
        assert r.status_code == 200, r.text
        r = await stack.http.post(f"/tickets/{tid}/events", json=photo, headers=agent)
        assert r.status_code == 202, r.text
        t = await stack.until(tid, lambda t: [e["action"] for e in t["events"]][-1] == "event:customer_photo")
        actions = [e["action"] for e in t["events"]]
        assert actions.count("comment") == 1 and actions.count("event:customer_photo") == 1, actions


async def test_a_hung_temporal_server_holds_no_request(db, database_url, tmp_path):
    timeout = 3.0
    async with fault_stack(database_url, tmp_path, action_timeout_s=timeout) as stack:
        tid = (await stack.create(title="Boiler pressure low")).json()["ticket_id"]
        await stack.until(tid, lambda t: t["active"] == ["work"] and t["seq"] >= 2)
        await quiet(stack.client, [f"ticket-{tid}"])
        before = await table_counts(db)
        body = {"title": "Chiller tripped while Temporal hung", "description": "made once"}
        key = f"temporal-hung-{uuid.uuid4().hex[:8]}"
        agent, photo = stack.as_actor("agent-wang"), {"name": "customer_photo", "text": "https://img.example/p2"}

        stack.server.pause()
        began = time.monotonic()
        try:
            created, acted, evented = await asyncio.wait_for(
                asyncio.gather(
                    stack.create(idempotency_key=key, **body),
                    stack.act(tid, "comment", actor="agent-wang", text="sent while Temporal hung"),
                    stack.http.post(f"/tickets/{tid}/events", json=photo, headers=agent),
                ),
                60,
            )
            answered = time.monotonic() - began
            assert answered < timeout + 2, answered  # bounded by the action timeout, not Temporal's 30 s
            assert_unavailable(created, "POST /tickets")
            for r in (acted, evented):  # an Update not accepted in time: 504, and it will never apply
                assert r.status_code == 504 and r.json()["applied"] is False, r.text
            assert await table_counts(db) == before  # nothing half-created
        finally:
            stack.server.resume()

        made = await stack.create(idempotency_key=key, **body)
        assert made.status_code in (200, 201), made.text  # 200: the start had reached Temporal after all
        new = made.json()["ticket_id"]
        again = await stack.create(idempotency_key=key, **body)
        assert again.status_code == 200 and again.json()["ticket_id"] == new, again.text
        assert (await table_counts(db))["ticket"] == before["ticket"] + 1
        r = await stack.act(tid, "comment", actor="agent-wang", text="after the hang")
        assert r.status_code == 200, r.text
        await quiet(stack.client, [f"ticket-{tid}"])
        t = (await stack.get(tid)).json()
        comments = [e["data"].get("text") for e in t["events"] if e["action"] == "comment"]
        assert comments == ["after the hang"], t["events"]  # the one sent while it hung never applied
        assert "event:customer_photo" not in [e["action"] for e in t["events"]]
