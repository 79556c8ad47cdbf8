"""Deactivating someone over HTTP gives their open work to others (real app, dev server, worker)."""

import uuid

import pytest

from workflows.person_left import workflow_id

pytestmark = pytest.mark.asyncio


async def test_deactivating_someone_who_holds_a_ticket_releases_it(stack):
    admin = stack.as_actor("admin")
    pid = f"eng-leaving-{uuid.uuid4().hex[:6]}"
    r = await stack.http.post(
        "/people", json={"id": pid, "name": "Leaving", "roles": ["engineer"], "regions": ["east"]}, headers=admin
    )
    assert r.status_code == 201, r.text
    key = (await stack.http.post(f"/people/{pid}/api-keys", json={}, headers=admin)).json()["api_key"]
    r = await stack.create()
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"] == ["work"])
    r = await stack.http.post(f"/tickets/{tid}/actions/claim", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["assignee"] == pid, r.text

    r = await stack.http.delete(f"/people/{pid}", headers=admin)
    assert r.status_code == 202, r.text
    assert r.json() == {"person_id": pid, "tickets": [tid], "workflow_id": workflow_id(pid)}
    assert await stack.client.get_workflow_handle(workflow_id(pid)).result() == [tid]
    released = lambda t: any(e["action"] == "released" for e in t["events"])  # noqa: E731  (read model)
    t = await stack.until(tid, lambda t: t["nodes"]["work"]["assignee"] is None and released(t))
    assert (t["nodes"]["work"]["status"], t["assignee"], t["status"]) == ("open", None, "new")
    assert [e["data"]["person"] for e in t["events"] if e["action"] == "released"] == [pid]
    assert (await stack.http.get("/me/notifications", headers={"X-API-Key": key})).status_code == 401  # gone
    r = await stack.http.delete(f"/people/{pid}", headers=admin)
    assert r.status_code == 204, r.text  # nothing left to take back
    r = await stack.act(tid, "claim", actor="eng-li")  # the region's engineers can take it
    assert r.status_code == 200 and r.json()["assignee"] == "eng-li", r.text
