"""/me/notifications and /me/contact over HTTP against the real app (the /me router
included), inbox items written by the real notify.send activity."""

import uuid
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities import notify
from api.app import create_app
from api.routers import me
from models import demo
from models.db import Database
from models.notifications import NotifyInput, TicketBrief, Urgency
from models.settings import Settings


def as_actor(actor_id: str) -> dict[str, str]:
    return {"X-API-Key": demo.demo_api_key(actor_id)}


@pytest.fixture
async def http(db: Database, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, webhook_url=None)
    notify.configure(settings)
    # The /me routes never call Temporal: a placeholder keeps the lifespan from connecting.
    app = create_app(settings, client=cast(Client, object()))
    app.include_router(me.router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ticketflow.test") as client:
            yield client
    notify.configure()


async def notify_inbox(
    tid: str, node: str, recipients: list[str], region: str = "east", title: str = "漏水 Leak"
) -> None:
    """A low-urgency reminder: the routing rules send it to the inbox only."""
    req = NotifyInput(
        dedup_key=f"{tid}:{node}:reminder",
        event="reminder",
        urgency=Urgency.LOW,
        ticket=TicketBrief(id=tid, title=title, region=region, link=f"https://ticketflow.test/t/{tid}"),
        recipients=recipients,
    )
    result = await ActivityEnvironment().run(notify.send_notification, req)
    assert result.sent == len(recipients)


def new_ticket() -> str:
    return f"I{uuid.uuid4().hex[:12].upper()}"


async def test_list_is_newest_first_with_unread_filter_and_mark_read(http: httpx.AsyncClient):
    tid = new_ticket()
    for node in ("n1", "n2", "n3"):
        await notify_inbox(tid, node, ["eng-li"])
    page = (await http.get("/me/notifications", params={"ticket_id": tid}, headers=as_actor("eng-li"))).json()
    assert [i["body"].count(tid) > 0 for i in page["items"]] == [True, True, True]
    ids = [i["id"] for i in page["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert page["unread_count"] == 3 and all(i["read_at"] is None for i in page["items"])
    assert page["items"][0]["title"].endswith("漏水 Leak") and page["items"][0]["link"].endswith(tid)

    marked = await http.post(f"/me/notifications/{ids[1]}/read", headers=as_actor("eng-li"))
    assert marked.status_code == 200 and marked.json()["read_at"] is not None
    again = await http.post(f"/me/notifications/{ids[1]}/read", headers=as_actor("eng-li"))
    assert again.json()["read_at"] == marked.json()["read_at"]  # idempotent: the first read time stays

    unread = (
        await http.get("/me/notifications", params={"ticket_id": tid, "unread_only": True}, headers=as_actor("eng-li"))
    ).json()
    assert [i["id"] for i in unread["items"]] == [ids[0], ids[2]] and unread["unread_count"] == 2
    everything = (await http.get("/me/notifications", headers=as_actor("eng-li"))).json()
    assert {ids[0], ids[1], ids[2]} <= {i["id"] for i in everything["items"]}


async def test_someone_elses_notification_is_404_and_never_listed(http: httpx.AsyncClient):
    tid = new_ticket()
    await notify_inbox(tid, "n1", ["eng-zhao"])
    [item] = (await http.get("/me/notifications", params={"ticket_id": tid}, headers=as_actor("eng-zhao"))).json()[
        "items"
    ]
    mine = (await http.get("/me/notifications", params={"ticket_id": tid}, headers=as_actor("eng-li"))).json()
    assert mine["items"] == [] and mine["unread_count"] == 0
    r = await http.post(f"/me/notifications/{item['id']}/read", headers=as_actor("eng-li"))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await http.post("/me/notifications/999999999/read", headers=as_actor("eng-li"))
    assert r.status_code == 404
    still = (await http.get("/me/notifications", params={"ticket_id": tid}, headers=as_actor("eng-zhao"))).json()
    assert still["items"][0]["read_at"] is None  # the failed attempt changed nothing


async def test_items_about_tickets_outside_the_callers_regions_are_hidden(http: httpx.AsyncClient):
    tid = new_ticket()
    await notify_inbox(tid, "n1", ["agent-chen", "admin"], region="east")  # agent-chen works in south only
    chen = (await http.get("/me/notifications", params={"ticket_id": tid}, headers=as_actor("agent-chen"))).json()
    admin = (await http.get("/me/notifications", params={"ticket_id": tid}, headers=as_actor("admin"))).json()
    assert chen["items"] == [] and len(admin["items"]) == 1


async def test_pagination_read_all_and_errors(http: httpx.AsyncClient):
    tid = new_ticket()
    for n in range(5):
        await notify_inbox(tid, f"n{n}", ["sup-zhou"])
    seen: list[int] = []
    cursor = None
    while True:
        params = {"ticket_id": tid, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/me/notifications", params=params, headers=as_actor("sup-zhou"))).json()
        assert len(page["items"]) <= 2 and page["unread_count"] == 5
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)

    done = await http.post("/me/notifications/read-all", params={"ticket_id": tid}, headers=as_actor("sup-zhou"))
    assert done.status_code == 200 and done.json() == {"marked": 5}
    again = await http.post("/me/notifications/read-all", params={"ticket_id": tid}, headers=as_actor("sup-zhou"))
    assert again.json() == {"marked": 0}
    unread = (
        await http.get(
            "/me/notifications", params={"ticket_id": tid, "unread_only": "true"}, headers=as_actor("sup-zhou")
        )
    ).json()
    assert unread == {"items": [], "next_cursor": None, "unread_count": 0}

    bad = await http.get("/me/notifications", params={"cursor": "%%%"}, headers=as_actor("sup-zhou"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert (await http.get("/me/notifications", params={"limit": 0}, headers=as_actor("sup-zhou"))).status_code == 422
    assert (await http.get("/me/notifications")).status_code == 401


async def test_contact_details_are_read_and_replaced(http: httpx.AsyncClient):
    h = as_actor("eng-zhao")
    body = {"email": "zhao.lei@plant.test", "phone": "+8613800000003", "im_user": "wecom-zhaolei"}
    put = await http.put("/me/contact", json=body, headers=h)
    assert put.status_code == 200 and put.json() == {"actor_id": "eng-zhao", **body}
    assert (await http.get("/me/contact", headers=h)).json() == {"actor_id": "eng-zhao", **body}
    bad = await http.put("/me/contact", json={"email": "not an address"}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "email"]
