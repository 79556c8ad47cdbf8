"""Templates over HTTP: publish/import/export/versions, save-time validation, classification,
form validation, field visibility, version pinning, and a preset driven end to end."""

import copy
import uuid

import pytest
import yaml

from tests.support import preset

DESIGNER = "tmpl-admin"


def spec_of(key: str) -> dict:
    return copy.deepcopy(preset(key).spec.model_dump(mode="json"))


async def publish(stack, spec: dict, actor: str = DESIGNER):
    return await stack.http.post("/templates", json=spec, headers=stack.as_actor(actor))


async def test_publish_versions_import_export(stack):
    spec = spec_of("general") | {"key": "svc_versions", "name": "Versioned", "description": "", "classification": []}
    r = await publish(stack, spec)
    assert r.status_code == 201 and r.json()["version"] == 1
    again = await publish(stack, spec)
    assert again.status_code == 200 and again.json()["version"] == 1  # nothing changed: no new version
    spec["description"] = "edited"
    assert (await publish(stack, spec)).json()["version"] == 2

    h = stack.as_actor("agent-wang")
    versions = (await stack.http.get("/templates/svc_versions/versions", headers=h)).json()
    assert [v["version"] for v in versions] == [1, 2]
    v1 = (await stack.http.get("/templates/svc_versions/versions/1", headers=h)).json()
    assert v1["spec"]["description"] == ""
    assert (await stack.http.get("/templates/svc_versions", headers=h)).json()["version"] == 2
    assert (await stack.http.get("/templates/nope", headers=h)).status_code == 404

    text = (await stack.http.get("/templates/svc_versions/export", params={"version": 1}, headers=h)).text
    exported = yaml.safe_load(text)
    assert exported["key"] == "svc_versions" and "description" not in exported  # defaults left out
    exported["name"] = "Versioned (imported)"
    r = await stack.http.post(
        "/templates/import",
        content=yaml.safe_dump(exported).encode(),
        headers={**stack.as_actor(DESIGNER), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 201 and r.json()["version"] == 3, r.text
    listed = {t["key"]: t["version"] for t in (await stack.http.get("/templates", headers=h)).json()}
    assert listed["svc_versions"] == 3 and "equipment_repair" in listed


async def test_only_designers_publish(stack):
    r = await publish(stack, spec_of("general") | {"key": "svc_forbidden"}, actor="agent-wang")
    assert r.status_code == 403


BROKEN = """
key: broken
name: Everything wrong
fields:
  - {name: amount, type: money}
  - {name: note, type: text}
start: first
nodes:
  - {id: first, type: task, assignee: {role: engineer}, form: [note, colour], next: route}
  - id: route
    type: gateway
    conditions:
      - {when: 'amount > "lots"', to: big}
      - {when: 'amout > 5', to: big}
      - {when: 'amount >', to: big}
  - id: big
    type: parallel
    branches:
      - {name: a, start: a_task}
      - {name: b, start: b_task}
    next: finish
  - {id: a_task, type: task, assignee: {role: engineer}, next: finish}
  - {id: b_task, type: task, assignee: {role: engineer}, next: stray_end}
  - {id: erp, type: action, activity: erp.no_such_thing, next: finish}
  - {id: loop, type: task, assignee: {role: engineer}, next: loop}
  - {id: dangling, type: task, assignee: {role: engineer}, next: nowhere}
  - {id: finish, type: end}
  - {id: stray_end, type: end}
"""


async def test_validation_lists_every_problem_with_its_path(stack):
    r = await stack.http.post(
        "/templates/import",
        content=BROKEN.encode(),
        headers={**stack.as_actor(DESIGNER), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422
    got = {tuple(p["loc"]): p["msg"] for p in r.json()["detail"]}
    assert "unknown node 'nowhere'" in got[("body", "nodes", 7, "next")]
    assert "unknown field 'colour'" in got[("body", "nodes", 0, "form", 1)]
    assert "default branch" in got[("body", "nodes", 1, "default")]
    assert "different types" in got[("body", "nodes", 1, "conditions", 0, "when")]
    assert "unknown name(s): amout" in got[("body", "nodes", 1, "conditions", 1, "when")]
    assert "does not parse" in got[("body", "nodes", 1, "conditions", 2, "when")]
    assert "no registered activity named 'erp.no_such_thing'" in got[("body", "nodes", 5, "activity")]

    # Graph problems are reported once references are sound: fix those and look again.
    spec = yaml.safe_load(BROKEN)
    spec["nodes"][0]["form"] = ["note"]
    spec["nodes"][1]["conditions"] = [{"when": "amount > 100", "to": "big"}]
    spec["nodes"][1]["default"] = "finish"
    spec["nodes"][5]["activity"] = "purchasing.create_request"
    spec["nodes"][5]["inputs"] = {"ticket_id": "ticket_id", "sku": '"X"', "quantity": "1"}
    spec["nodes"][7]["next"] = "finish"
    r = await stack.http.post("/templates/validate", json=spec, headers=stack.as_actor(DESIGNER))
    assert r.status_code == 422
    found = [(tuple(p["loc"]), p["msg"]) for p in r.json()["detail"]]
    assert (("body", "nodes", 5), "node 'erp' cannot be reached from start") in found
    assert (("body", "nodes", 6), "node 'loop' cannot be reached from start") in found
    assert (("body", "nodes", 7), "node 'dangling' cannot be reached from start") in found
    assert (("body", "nodes", 2, "branches", 1), "branch 'b' never joins at 'finish'") in found
    spec["nodes"][0]["next"] = "loop"  # now reachable, but it never ends
    r = await stack.http.post("/templates/validate", json=spec, headers=stack.as_actor(DESIGNER))
    found = [(tuple(p["loc"]), p["msg"]) for p in r.json()["detail"]]
    assert (("body", "nodes", 6), "node 'loop' has no path to an end node") in found

    ok = spec_of("complaint")
    assert (await stack.http.post("/templates/validate", json=ok, headers=stack.as_actor(DESIGNER))).json() == {
        "problems": []
    }


async def test_schema_errors_are_422_too(stack):
    bad = spec_of("general")
    bad["nodes"][0]["type"] = "teleport"
    r = await publish(stack, bad)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:3] == ["body", "nodes", 0]
    r = await stack.http.post(
        "/templates/import",
        content=b"key: [unclosed",
        headers={**stack.as_actor(DESIGNER), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "yaml_invalid"


async def test_classification_picks_type_and_priority(stack):
    r = await stack.create(
        actor="gateway-qr",
        ticket_type=None,
        channel="qr",
        title="Machine smoking",
        fields={"device_id": "CMP-0042", "fault": "overheating"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["ticket_type"], r.json()["priority"]) == ("equipment_repair", "high")

    r = await stack.create(
        actor="gateway-qr", ticket_type=None, channel="web", title="投诉：安装师傅迟到",
        fields={"customer_tier": "vip", "complaint": "late twice"},
    )  # fmt: skip
    assert (r.json()["ticket_type"], r.json()["priority"]) == ("complaint", "urgent")
    r = await stack.create(actor="gateway-qr", ticket_type=None, channel="web", title="Printer jammed")
    assert r.json()["ticket_type"] == "general"  # the catch-all


async def test_form_values_are_validated_at_intake(stack):
    r = await stack.create(
        ticket_type="discount_approval",
        title="Discount for ACME",
        fields={"customer": "ACME", "amount": {"amount": 1500.5, "currency": "CNY"}, "colour": "red"},
    )
    assert r.status_code == 422
    got = {tuple(p["loc"]): p for p in r.json()["detail"]}
    assert "string" in got[("body", "fields", "amount")]["msg"]  # money never as a float
    assert got[("body", "fields", "colour")]["type"] == "unknown_field"
    assert got[("body", "fields", "justification")]["type"] == "missing"
    r = await stack.create(ticket_type="equipment_repair", title="x", fields={"device_id": "nope", "fault": "exploded"})
    got = {tuple(p["loc"]) for p in r.json()["detail"]}
    assert {("body", "fields", "device_id"), ("body", "fields", "fault")} <= got


async def test_running_ticket_keeps_its_template_version(stack):
    spec = spec_of("general") | {"key": "svc_pinned", "name": "Pinned", "classification": []}
    assert (await publish(stack, spec)).json()["version"] == 1
    old = (await stack.create(ticket_type="svc_pinned")).json()["ticket_id"]
    await stack.until(old, lambda t: t["active"])

    # Version 2 puts a review step before the work.
    spec["start"] = "review"
    spec["nodes"].insert(0, {"id": "review", "type": "task", "assignee": {"role": "supervisor"}, "next": "work"})
    assert (await publish(stack, spec)).json()["version"] == 2
    new = (await stack.create(ticket_type="svc_pinned")).json()["ticket_id"]
    t_new = await stack.until(new, lambda t: t["active"])
    assert (t_new["template_version"], t_new["active"]) == (2, ["review"])

    for action, body in [("claim", {}), ("start", {}), ("resolve", {"resolution": "done"})]:
        r = await stack.act(old, action, "eng-li", **body)
        assert r.status_code == 200, r.text
    t_old = (await stack.get(old)).json()
    assert (t_old["template_version"], t_old["status"], t_old["path"]) == (1, "resolved", ["work", "done"])


async def test_fields_hidden_from_roles_that_may_not_see_them(stack):
    r = await stack.create(
        ticket_type="complaint", title="Rude installer",
        fields={"customer_tier": "vip", "complaint": "rude", "compensation": {"amount": "200", "currency": "CNY"}},
        actor="sup-zhou",
    )  # fmt: skip
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    assert "compensation" in (await stack.get(tid, actor="sup-zhou")).json()["fields"]
    seen_by_agent = (await stack.get(tid, actor="agent-wang")).json()["fields"]
    assert "compensation" not in seen_by_agent and seen_by_agent["customer_tier"] == "vip"
    # …and an agent may not set it either.
    r = await stack.create(
        ticket_type="complaint", title="x", fields={"customer_tier": "regular", "complaint": "x",
        "compensation": {"amount": "1", "currency": "CNY"}},
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "not_editable"


@pytest.mark.parametrize("who", ["gateway-erp"])
async def test_ecommerce_return_preset_end_to_end_over_http(stack, who):
    r = await stack.create(
        actor=who, ticket_type=None, channel="ecommerce", external_ref="ORDER-88123-RETURN",
        title="Return order 88123: refund requested", region="east",
        fields={"order_no": "88123", "return_reason": "damaged",
                "refund_amount": {"amount": "399.00", "currency": "CNY"}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    assert r.json()["ticket_type"] == "ecommerce_return"
    await stack.until(tid, lambda t: t["active"] == ["register"])

    async def work(node, actor, fields=None):
        for action, body in [
            ("claim", {"node": node}),
            ("start", {"node": node}),
            ("complete", {"node": node, "fields": fields or {}}),
        ]:
            r = await stack.act(tid, action, actor, **body)
            assert r.status_code == 200, (node, action, r.text)
        return r.json()

    await work("register", "agent-wang", {"items": "1 kettle, box dented"})
    r = await stack.act(tid, "claim", "wh-xu", node="quality_check")
    assert r.status_code == 403  # not a quality checker
    t = await work("quality_check", "qc-ma", {"qc_result": "pass"})
    assert sorted(t["active"]) == ["fulfil", "pickup", "refund", "restock"]  # the parallel step and its branches
    r = await stack.act(tid, "claim", "admin")
    assert r.status_code == 409 and sorted(r.json()["nodes"]) == ["pickup", "refund", "restock"]

    await work("refund", "fin-qian", {"refund_reference": "RF-2026-0042"})
    await work("restock", "wh-xu", {"restocked": True})
    t = await work("pickup", "lg-he", {"tracking_no": "SF1234567890"})
    assert t["status"] == "resolved" and t["active"] == []
    assert (await stack.act(tid, "close", "agent-wang")).status_code == 200
    t = (await stack.get(tid, actor="admin")).json()
    assert t["status"] == "closed"
    assert t["path"][:4] == ["register", "quality_check", "qc_gate", "fulfil"] and t["path"][-1] == "closed"
    assert t["fields"]["refund_reference"] == "RF-2026-0042"
    assert (await stack.get(tid, actor="agent-wang")).json()["fields"]["refund_reference"] == "RF-2026-0042"
    assert "refund_reference" not in (await stack.get(tid, actor="qc-ma")).json()["fields"]


async def test_dispatch_settings_are_validated_with_their_paths(stack):
    spec = spec_of("installation")
    install = next(i for i, n in enumerate(spec["nodes"]) if n["id"] == "install")
    spec["nodes"][install]["dispatch"] = {"location_field": "order_no", "tier_field": "tier", "max_distance_km": 20}
    r = await stack.http.post("/templates/validate", json=spec, headers=stack.as_actor(DESIGNER))
    assert r.status_code == 422
    got = {tuple(p["loc"]): p["msg"] for p in r.json()["detail"]}
    loc = ("body", "nodes", install, "dispatch")
    assert got[(*loc, "location_field")] == "'order_no' is a text field, not a location field"
    assert got[(*loc, "tier_field")] == "unknown field 'tier'"
    spec["nodes"][install]["dispatch"] = {"max_distance_km": 20}
    got = {
        tuple(p["loc"]): p["msg"]
        for p in (await stack.http.post("/templates/validate", json=spec, headers=stack.as_actor(DESIGNER))).json()[
            "detail"
        ]
    }
    assert got[(*loc, "max_distance_km")] == "a distance limit needs a location_field"
    spec["nodes"][install]["dispatch"] = {"skills": {"installation": 7}}
    r = await publish(stack, spec)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:5] == ["body", "nodes", install, "task", "dispatch"]


async def test_a_task_for_a_group_is_taken_by_a_member_through_the_api(stack):
    """``assignee: {group: …}``: the caller's groups come from their record like their roles, so a
    member claims the task over HTTP and someone of the same role outside the group may not.
    (Quality checkers of the north region: people other tests do not count, dispatch or list.)"""
    suffix = uuid.uuid4().hex[:6]
    group = f"line-{suffix}"
    spec = spec_of("general") | {
        "key": f"svc_group_{suffix}",
        "name": "Line task",
        "description": "",
        "classification": [],
    }
    spec["nodes"][0]["assignee"] = {"group": group}
    assert (await publish(stack, spec)).status_code == 201
    keys = {}
    for who, groups in (("member", [group]), ("outsider", [])):
        body = {"id": f"{who}-{suffix}", "name": who, "roles": ["qc"], "regions": ["north"], "groups": groups}
        r = await stack.http.post("/people", json=body, headers=stack.as_actor("admin"))
        assert r.status_code == 201, r.text
        r = await stack.http.post(f"/people/{body['id']}/api-keys", json={}, headers=stack.as_actor("admin"))
        keys[who] = {"X-API-Key": r.json()["api_key"]}
    r = await stack.create(actor="admin", ticket_type=spec["key"], region="north", title="Line 3 conveyor stops")
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: "work" in t.get("active", []), actor="admin")

    outsider = await stack.http.post(f"/tickets/{tid}/actions/claim", headers=keys["outsider"])
    assert outsider.status_code == 403, outsider.text
    member = await stack.http.post(f"/tickets/{tid}/actions/claim", headers=keys["member"])
    assert member.status_code == 200, member.text
    assert member.json()["assignee"] == f"member-{suffix}"
