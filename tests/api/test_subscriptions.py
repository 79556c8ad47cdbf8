"""/subscriptions over HTTP against the real app: who may subscribe, what a target may be, the
secret shown once, another owner's subscription a 404, the delivery log's paging and
redelivery rules, bad input a 4xx naming the field."""

from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from domain.subscriptions import url_problem
from models.subscription_tables import Subscription
from store import subscriptions as store

pytestmark = pytest.mark.asyncio

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
async def forget(db) -> AsyncIterator[None]:
    """Each test's subscriptions go with it (the database is shared by the session)."""
    yield
    async with db.session() as s:
        for row in (await s.exec(select(Subscription).where(Subscription.url == HOOK))).all():
            await store.delete(s, row.id)
        await s.commit()


def h(stack, actor: str) -> dict:
    return stack.as_actor(actor)


async def create(stack, actor: str = "admin", **body):
    body = {"url": HOOK, "events": ["created", "resolved"], **body}
    return await stack.http.post("/subscriptions", json=body, headers=h(stack, actor))


async def test_admin_and_machine_accounts_subscribe_others_may_not(stack):
    r = await create(stack, secret="s" * 40, filters={"regions": ["east"], "ticket_types": ["general"]})
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["secret"] == "s" * 40 and sub["state"] == "active" and sub["owner_id"] == "admin"
    got = await stack.http.get(f"/subscriptions/{sub['id']}", headers=h(stack, "admin"))
    assert got.status_code == 200 and got.json()["secret"] is None  # shown once
    assert got.json()["filters"] == {"regions": ["east"], "ticket_types": ["general"], "sources": []}

    r = await create(stack, "gateway-erp")
    assert r.status_code == 201 and len(r.json()["secret"]) >= 32  # generated
    erp = r.json()
    for actor in ("agent-wang", "sup-zhou", "eng-li"):
        assert (await create(stack, actor)).status_code == 403
        assert (await stack.http.get("/subscriptions", headers=h(stack, actor))).status_code == 403
        assert (await stack.http.get(f"/subscriptions/{sub['id']}", headers=h(stack, actor))).status_code == 404
    assert (await stack.http.post("/subscriptions", json={"url": HOOK, "events": ["created"]})).status_code == 401

    # a machine account sees only its own; the admin sees all
    mine = (await stack.http.get("/subscriptions", headers=h(stack, "gateway-erp"))).json()["items"]
    assert erp["id"] in {s["id"] for s in mine} and {s["owner_id"] for s in mine} == {"gateway-erp"}
    assert (await stack.http.get(f"/subscriptions/{sub['id']}", headers=h(stack, "gateway-erp"))).status_code == 404
    assert (await stack.http.delete(f"/subscriptions/{sub['id']}", headers=h(stack, "gateway-erp"))).status_code == 404
    r = await stack.http.post(f"/subscriptions/{sub['id']}/resume", headers=h(stack, "gateway-qr"))
    assert r.status_code == 404
    every = (await stack.http.get("/subscriptions", headers=h(stack, "admin"))).json()["items"]
    assert {sub["id"], erp["id"]} <= {s["id"] for s in every}

    # delete: gone with its log
    assert (await stack.http.delete(f"/subscriptions/{erp['id']}", headers=h(stack, "gateway-erp"))).status_code == 204
    assert (await stack.http.get(f"/subscriptions/{erp['id']}", headers=h(stack, "gateway-erp"))).status_code == 404
    assert (await stack.http.delete(f"/subscriptions/{erp['id']}", headers=h(stack, "gateway-erp"))).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://example.com/hook"}, "url"),  # plain http only to localhost (development)
        ({"url": "https://10.1.2.3/hook"}, "url"),
        ({"url": "https://169.254.169.254/latest"}, "url"),
        ({"url": "https://user:pw@example.com/hook"}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://example.com/a\r\nX-Evil: 1"}, "url"),
        ({"url": "https://exa mple.com/"}, "url"),
        ({"url": "https://example.com:99999/"}, "url"),
        ({"url": "https://" + "a" * 2000}, "url"),
        ({"events": []}, "events"),
        ({"events": ["exploded"]}, "events"),
        ({"filters": {"regions": ["atlantis"]}}, "filters"),
        ({"filters": {"regions": ["bad region!"]}}, "filters"),
        ({"filters": {"colour": ["red"]}}, "filters"),
        ({"secret": "short"}, "secret"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(stack, body, field):
    r = await create(stack, **body)
    assert r.status_code == 422, r.text
    assert any(field in d["loc"] for d in r.json()["detail"]), r.json()


async def test_the_url_rules_in_production():
    assert url_problem("https://erp.example.com/hooks", development=False) is None
    for url in ("http://127.0.0.1:8080/x", "https://localhost/x", "https://192.168.1.5/x", "https://[::1]/x",
                "https://127.0.0.1/x", "https://x.localhost/x", "http://erp.example.com/x"):  # fmt: skip
        assert url_problem(url, development=False), url
    assert url_problem("http://127.0.0.1:8080/x", development=True) is None
    assert url_problem("https://10.0.0.8/x", development=True)


async def test_delivery_log_and_redelivery_edges(stack):
    sub = (await create(stack)).json()
    base = f"/subscriptions/{sub['id']}/deliveries"
    r = await stack.http.get(base, headers=h(stack, "admin"))
    assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
    assert (await stack.http.get(f"{base}?cursor=%%%", headers=h(stack, "admin"))).status_code == 422
    assert (await stack.http.get(f"{base}?limit=0", headers=h(stack, "admin"))).status_code == 422
    assert (await stack.http.post(f"{base}/999999/redeliver", headers=h(stack, "admin"))).status_code == 404
    assert (
        await stack.http.get("/subscriptions/sub_0123abcd/deliveries", headers=h(stack, "admin"))
    ).status_code == 404
    assert (await stack.http.get("/subscriptions/not-an-id", headers=h(stack, "admin"))).status_code == 422
    # a ticket makes a pending delivery: redelivering it is a conflict (it is still being tried)
    r = await stack.create(title="Belt slipping")
    assert r.status_code == 201
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: t["active"])
    items = (await stack.http.get(base, headers=h(stack, "admin"))).json()["items"]
    mine = [d for d in items if d["ticket_id"] == tid]
    assert [d["event"] for d in mine] == ["created"] and mine[0]["status"] == "pending"
    assert mine[0]["event_id"].startswith("evt_")
    r = await stack.http.post(f"{base}/{mine[0]['id']}/redeliver", headers=h(stack, "admin"))
    assert r.status_code == 409
    # resume of an active subscription changes nothing
    r = await stack.http.post(f"/subscriptions/{sub['id']}/resume", headers=h(stack, "admin"))
    assert r.status_code == 200 and r.json()["state"] == "active"


async def test_which_ticket_events_are_which_subscription_events():
    from datetime import UTC, datetime

    from domain.subscriptions import events_of
    from models.common import TicketStatus as S
    from models.ticket import TicketEvent

    def names(action: str, before: S | None, after: S, **data) -> list[str]:
        e = TicketEvent(ticket_id="T1", seq=1, action=action, actor_id="x", from_status=before, to_status=after,
                        at=datetime.now(UTC), data=data)  # fmt: skip
        return [n.value for n in events_of(e)]

    assert names("created", None, S.NEW) == ["created"]
    assert names("claim", S.NEW, S.ASSIGNED) == ["assigned", "status_changed"]
    assert names("dispatched", S.NEW, S.NEW, reason="nobody free") == []  # a dispatch that found nobody
    assert names("dispatched", S.ASSIGNED, S.ASSIGNED, assignee="eng-li") == ["assigned"]
    assert names("sla_breach", S.IN_PROGRESS, S.IN_PROGRESS) == ["sla_breached"]
    assert names("approve", S.IN_PROGRESS, S.IN_PROGRESS) == ["approval_decided"]
    assert names("resolve", S.IN_PROGRESS, S.RESOLVED) == ["status_changed", "resolved"]
    assert names("close", S.RESOLVED, S.CLOSED) == ["status_changed", "closed"]
    assert names("survey_answered", S.CLOSED, S.CLOSED) == ["survey_answered"]
    assert names("comment", S.IN_PROGRESS, S.IN_PROGRESS) == []
