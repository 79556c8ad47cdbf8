"""/schedules over HTTP against the real app, the real database and the dev server (Temporal
Schedules are not implemented by the time-skipping server): a maintenance plan on an asset
under contract becomes a Temporal Schedule (interval, start, the contract's end, note, memo,
search attributes); its firings open one ticket each, never two for the same firing; pause,
resume and delete change the Temporal schedule and are audited. Negatives: another region's
schedule is a 404 (and another region's asset or contract is reported like an unknown one: a
422 naming the field), an engineer, an agent or a channel account a 403, a bad body a 422
naming the field.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select
from temporalio.client import ScheduleBackfill, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from models import search_attributes as attrs
from models.db import Database
from models.tables import AuditLog
from tests.conftest import Stack
from tests.workflows.test_maintenance import runs_done, tickets_with_key

pytestmark = pytest.mark.asyncio

PLAN = {"asset_id": "ast_demo0001", "ticket_type": "equipment_repair", "every": "P7D", "title": "Compressor service"}
PLAN_FIELDS = {"fault": "other"}
CONTRACT_END = datetime(2029, 7, 1, tzinfo=ZoneInfo("Asia/Shanghai"))  # SC-DEMO-0001 is valid to 2029-06-30


async def post(stack: Stack, actor: str = "sup-zhou", headers: dict[str, str] | None = None, **body: Any) -> Any:
    payload = {**PLAN, "fields": PLAN_FIELDS, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    return await stack.http.post("/schedules", json=payload, headers={**stack.as_actor(actor), **(headers or {})})


def problem(response: Any) -> tuple[list[Any], str]:
    assert response.status_code == 422, response.text
    (first,) = response.json()["detail"]
    return first["loc"], first["type"]


async def audit_actions(db: Database, schedule_id: str) -> list[str]:
    async with db.session() as s:
        q = select(AuditLog.action).where(col(AuditLog.target_id) == schedule_id).order_by(col(AuditLog.id))
        return list((await s.exec(q)).all())


async def test_a_plan_is_a_temporal_schedule_managed_through_the_api(stack: Stack, db: Database):
    before = datetime.now(UTC)
    created = await post(stack)
    assert created.status_code == 201, created.text
    plan = created.json()
    sid = plan["id"]
    assert plan["kind"] == "maintenance" and plan["state"] == "active" and plan["every"] == "P7D"
    assert (plan["region"], plan["customer_id"], plan["contract"]) == ("east", "cus_demo0001", "SC-DEMO-0001")
    assert plan["created_by"] == "sup-zhou"
    start = datetime.fromisoformat(plan["start_at"])
    assert before + timedelta(days=7) - timedelta(seconds=1) <= start <= datetime.now(UTC) + timedelta(days=7)
    assert datetime.fromisoformat(plan["end_at"]) == CONTRACT_END

    handle = stack.client.get_schedule_handle(sid)
    desc = await handle.describe()
    assert desc.schedule.spec.intervals[0].every == timedelta(days=7)
    assert desc.schedule.spec.end_at == CONTRACT_END
    assert desc.info.next_action_times[0] == start
    assert desc.typed_search_attributes.get(attrs.TICKET_REGION) == "east"
    assert (await desc.memo())["contract"] == "SC-DEMO-0001"
    assert "asset ast_demo0001 under contract SC-DEMO-0001 every 7 days" in (desc.schedule.state.note or "")

    detail = (await stack.http.get(f"/schedules/{sid}", headers=stack.as_actor("agent-wang"))).json()
    assert detail["temporal"] is True and detail["paused"] is False
    assert [datetime.fromisoformat(t) for t in detail["next_runs"][:2]] == [start, start + timedelta(days=7)]
    listed = (await stack.http.get("/schedules?asset_id=ast_demo0001", headers=stack.as_actor("agent-wang"))).json()
    assert sid in [s["id"] for s in listed["items"]]

    # Another region: not listed, not found, not paused — and Temporal is untouched.
    south = (await stack.http.get("/schedules?limit=200", headers=stack.as_actor("agent-chen"))).json()
    assert sid not in [s["id"] for s in south["items"]]
    assert (await stack.http.get(f"/schedules/{sid}", headers=stack.as_actor("agent-chen"))).status_code == 404
    assert (await stack.http.post(f"/schedules/{sid}/pause", headers=stack.as_actor("mgr-luo"))).status_code == 404
    assert (await stack.http.delete(f"/schedules/{sid}", headers=stack.as_actor("sup-lin"))).status_code == 404
    # Roles: an engineer or an agent may read but not change it; a channel account neither.
    assert (await stack.http.post(f"/schedules/{sid}/pause", headers=stack.as_actor("eng-li"))).status_code == 403
    assert (await stack.http.delete(f"/schedules/{sid}", headers=stack.as_actor("agent-wang"))).status_code == 403
    assert (await stack.http.get(f"/schedules/{sid}", headers=stack.as_actor("gateway-qr"))).status_code == 403
    assert (await handle.describe()).schedule.state.paused is False

    paused = await stack.http.post(f"/schedules/{sid}/pause", headers=stack.as_actor("mgr-sun"))
    assert paused.status_code == 200 and paused.json()["state"] == "paused" and paused.json()["paused"] is True
    desc = await handle.describe()
    assert desc.schedule.state.paused is True and desc.schedule.state.note == "paused by mgr-sun"
    resumed = await stack.http.post(f"/schedules/{sid}/resume", headers=stack.as_actor("sup-zhou"))
    assert resumed.status_code == 200 and resumed.json()["state"] == "active"
    assert (await handle.describe()).schedule.state.paused is False

    deleted = await stack.http.delete(f"/schedules/{sid}", headers=stack.as_actor("sup-zhou"))
    assert deleted.status_code == 204
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    after = (await stack.http.get(f"/schedules/{sid}", headers=stack.as_actor("sup-zhou"))).json()
    assert after["state"] == "deleted" and after["temporal"] is False and after["next_runs"] == []
    listed = (await stack.http.get("/schedules?asset_id=ast_demo0001", headers=stack.as_actor("sup-zhou"))).json()
    assert sid not in [s["id"] for s in listed["items"]]
    listed = (await stack.http.get("/schedules?state=deleted", headers=stack.as_actor("admin"))).json()
    assert sid in [s["id"] for s in listed["items"]]
    assert (await stack.http.post(f"/schedules/{sid}/resume", headers=stack.as_actor("sup-zhou"))).status_code == 409
    assert (await stack.http.delete(f"/schedules/{sid}", headers=stack.as_actor("sup-zhou"))).status_code == 204
    assert await audit_actions(db, sid) == ["schedule.create", "schedule.pause", "schedule.resume", "schedule.delete"]


async def test_its_firings_open_one_ticket_each_never_two(stack: Stack, db: Database):
    start = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0)
    created = await post(stack, actor="admin", every="P2D", start_at=start.isoformat())
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    handle = stack.client.get_schedule_handle(sid)
    try:
        window = ScheduleBackfill(
            start_at=start, end_at=start + timedelta(days=2, hours=1), overlap=ScheduleOverlapPolicy.ALLOW_ALL
        )
        await handle.backfill(window)
        assert [r.new for r in await runs_done(stack, handle, 2)] == [True, True]
        await handle.backfill(window)  # the same two firings, delivered again
        assert [r.new for r in await runs_done(stack, handle, 4)] == [True, True, False, False]
        opened = await tickets_with_key(db, f"schedule:{sid}:%")
        assert len(opened) == 2
        assert [t.created_at.date() for t in opened] == [datetime.now(UTC).date()] * 2
        assert {t.created_by for t in opened} == {"admin"} and {t.asset_id for t in opened} == {"ast_demo0001"}
        detail = (await stack.http.get(f"/schedules/{sid}", headers=stack.as_actor("sup-zhou"))).json()
        assert detail["actions_taken"] == 4
        assert [datetime.fromisoformat(r["scheduled_at"]) for r in detail["recent_runs"]] == [
            start,
            start + timedelta(days=2),
        ] * 2
    finally:
        await handle.delete()


async def test_a_repeat_with_the_same_key_is_the_same_plan(stack: Stack, db: Database):
    key = {"Idempotency-Key": f"plan-{uuid.uuid4().hex}"}
    first = await post(stack, headers=key)
    again = await post(stack, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = await post(stack, actor="mgr-sun", headers=key)  # another person's key is theirs alone
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    for sid in (first.json()["id"], other.json()["id"]):
        await stack.client.get_schedule_handle(sid).delete()
    assert await audit_actions(db, first.json()["id"]) == ["schedule.create"]


async def test_a_contract_names_the_plan(stack: Stack):
    # SC-DEMO-0002 covers every asset of a south company: the plan is the customer's, in south.
    created = await post(
        stack, actor="sup-lin", asset_id=None, contract="SC-DEMO-0002", ticket_type="general", fields={}
    )
    assert created.status_code == 201, created.text
    plan = created.json()
    assert (plan["region"], plan["customer_id"], plan["asset_id"]) == ("south", "cus_demo0002", None)
    await stack.client.get_schedule_handle(plan["id"]).delete()
    # SC-DEMO-0001 names its asset: the plan is on it.
    on_asset = await post(stack, asset_id=None, contract="SC-DEMO-0001")
    assert on_asset.status_code == 201 and on_asset.json()["asset_id"] == "ast_demo0001"
    await stack.client.get_schedule_handle(on_asset.json()["id"]).delete()


async def test_who_may_plan(stack: Stack):
    for actor in ("eng-li", "agent-wang", "sales-gao", "gateway-qr"):
        assert (await post(stack, actor=actor)).status_code == 403, actor


async def test_what_a_plan_must_name(stack: Stack):
    # Another region's asset or contract reads exactly like one that does not exist.
    unknown = await post(stack, asset_id="ast_nosuch")
    foreign = await post(stack, asset_id="ast_demo0002")  # south's
    assert problem(unknown) == problem(foreign) == (["body", "asset_id"], "unknown_asset")
    assert unknown.json() == foreign.json()
    assert problem(await post(stack, asset_id=None, contract="SC-DEMO-0002")) == (
        ["body", "contract"],
        "unknown_contract",
    )
    assert problem(await post(stack, asset_id=None, contract="NO-SUCH")) == (["body", "contract"], "unknown_contract")
    assert problem(await post(stack, actor="admin", contract="SC-DEMO-0002")) == (
        ["body", "contract"],
        "contract_not_covering",
    )
    assert problem(await post(stack, asset_id=None, contract="SC-DEMO-0003")) == (
        ["body", "contract"],
        "contract_expired",
    )
    assert problem(await post(stack, asset_id="ast_demo0003", ticket_type="general", fields={})) == (
        ["body", "asset_id"],
        "not_under_contract",
    )
    assert problem(await post(stack, asset_id=None))[0] == ["body"]


async def test_bad_bodies_are_422_naming_the_field(stack: Stack):
    assert problem(await post(stack, every="PT23H59M")) == (["body", "every"], "value_error")
    assert problem(await post(stack, every="P4000D")) == (["body", "every"], "value_error")
    assert problem(await post(stack, every="weekly"))[0] == ["body", "every"]
    assert problem(await post(stack, ticket_type="no_such_type")) == (["body", "ticket_type"], "unknown_ticket_type")
    assert problem(await post(stack, ticket_type="discount_approval")) == (
        ["body", "ticket_type"],
        "channel_not_allowed",
    )
    assert problem(await post(stack, fields={"fault": "fire"})) == (["body", "fields", "fault"], "invalid_value")
    assert problem(await post(stack, fields={})) == (["body", "fields", "fault"], "missing")
    assert problem(await post(stack, title="x" * 201))[0] == ["body", "title"]
    assert problem(await post(stack, colour="red"))[0] == ["body", "colour"]
    assert problem(await post(stack, start_at="2027-01-01T00:00:00"))[0] == ["body", "start_at"]  # no zone
    assert problem(await post(stack, start_at="2030-01-01T00:00:00Z")) == (["body", "start_at"], "after_contract")
    assert problem(await post(stack, start_at="2020-01-01T00:00:00Z")) == (["body", "start_at"], "out_of_range")
    assert problem(await post(stack, fields={f"f{n}": n for n in range(51)}))[0] == ["body", "fields"]
    listed = await stack.http.get("/schedules?cursor=not-a-cursor", headers=stack.as_actor("sup-zhou"))
    assert problem(listed) == (["query", "cursor"], "value_error")
    assert (await stack.http.get("/schedules/bad%20id", headers=stack.as_actor("sup-zhou"))).status_code == 422
    assert (await stack.http.get("/schedules/mnt-nosuch", headers=stack.as_actor("sup-zhou"))).status_code == 404
