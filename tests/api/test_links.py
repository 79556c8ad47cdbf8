"""Links between tickets and merging a duplicate into its master, over HTTP (docs/linked-tickets.md):
real app, real dev server and worker, real database."""

import uuid
from datetime import UTC, datetime

import pytest

from models.customer_tables import Customer
from models.db import Database

pytestmark = pytest.mark.asyncio


async def ticket(stack, actor: str = "agent-wang", **body) -> str:
    r = await stack.create(actor=actor, **{"title": "Line 2 conveyor stopped", **body})
    assert r.status_code == 201, r.text
    return r.json()["ticket_id"]


async def link(stack, ticket_id: str, kind: str, target: str, actor: str = "agent-wang"):
    return await stack.http.post(
        f"/tickets/{ticket_id}/links", json={"kind": kind, "target": target}, headers=stack.as_actor(actor)
    )


async def links(stack, ticket_id: str, actor: str = "agent-wang") -> list[dict]:
    r = await stack.http.get(f"/tickets/{ticket_id}/links", headers=stack.as_actor(actor))
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def merge(stack, ticket_id: str, into: str, actor: str = "sup-zhou"):
    return await stack.http.post(f"/tickets/{ticket_id}/merge", json={"into": into}, headers=stack.as_actor(actor))


async def audit(stack, ticket_id: str) -> list[tuple[str, str]]:
    r = await stack.http.get(
        "/audit", params={"target_type": "ticket", "target_id": ticket_id}, headers=stack.as_actor("admin")
    )
    assert r.status_code == 200, r.text
    return [(e["action"], e["actor_id"]) for e in reversed(r.json()["items"])]


# --- links ---


async def test_a_link_reads_from_both_tickets_and_goes_again(stack):
    a, b = await ticket(stack), await ticket(stack, title="Line 2 belt worn")
    r = await link(stack, a, "caused_by", b)
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["kind"], made["ticket_id"], made["target_id"], made["direction"]) == ("caused_by", a, b, "outgoing")
    assert made["id"].startswith("lnk_") and not made["merged"] and made["created_by"] == "agent-wang"
    assert made["other"] == {
        "id": b,
        "title": "Line 2 belt worn",
        "status": "new",
        "region": "east",
        "ticket_type": "general",
    }

    assert [(i["id"], i["direction"]) for i in await links(stack, a)] == [(made["id"], "outgoing")]
    incoming = await links(stack, b, actor="eng-li")  # any staff of the region reads them
    assert [(i["id"], i["direction"], i["other"]["id"]) for i in incoming] == [(made["id"], "incoming", a)]

    # Once per pair and kind — caused_by and related_to in either direction.
    assert (await link(stack, a, "caused_by", b)).status_code == 409
    assert (await link(stack, b, "caused_by", a)).status_code == 409
    assert (await link(stack, b, "related_to", a)).status_code == 201
    assert (await link(stack, a, "related_to", b)).status_code == 409

    r = await stack.http.delete(f"/tickets/{b}/links/{made['id']}", headers=stack.as_actor("agent-wang"))
    assert r.status_code == 204, r.text
    assert [i["kind"] for i in await links(stack, a)] == ["related_to"]
    r = await stack.http.delete(f"/tickets/{b}/links/{made['id']}", headers=stack.as_actor("agent-wang"))
    assert r.status_code == 404  # gone
    assert await audit(stack, a) == [("ticket.link", "agent-wang")]
    assert await audit(stack, b) == [("ticket.link", "agent-wang"), ("ticket.unlink", "agent-wang")]


async def test_links_refused(stack):
    a, b, c = await ticket(stack), await ticket(stack), await ticket(stack)
    south = await ticket(stack, actor="agent-chen", region="south")
    assert (await link(stack, a, "related_to", south)).status_code == 404  # another region's ticket
    assert (await link(stack, south, "related_to", a)).status_code == 404
    r = await stack.http.get(f"/tickets/{south}/links", headers=stack.as_actor("agent-wang"))
    assert r.status_code == 404
    r = await link(stack, a, "related_to", a)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "target"]
    assert (await link(stack, a, "related_to", "TNOSUCHTICKET")).status_code == 404
    assert (await link(stack, a, "twin_of", b)).status_code == 422
    r = await link(stack, a, "related_to", "x" * 33)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "target"]
    r = await stack.http.post(f"/tickets/{a}/links", json={"kind": "related_to", "target": b, "x": 1},
                              headers=stack.as_actor("agent-wang"))  # fmt: skip
    assert r.status_code == 422
    assert (await link(stack, a, "related_to", b, actor="gateway-qr")).status_code == 403  # channel accounts: no
    r = await stack.http.delete(f"/tickets/{a}/links/not-a-link", headers=stack.as_actor("agent-wang"))
    assert r.status_code == 422

    # A duplicate has one master, and no chain of duplicates loops.
    assert (await link(stack, a, "duplicate_of", b)).status_code == 201
    assert (await link(stack, a, "duplicate_of", c)).status_code == 409
    assert (await link(stack, b, "duplicate_of", c)).status_code == 201
    r = await link(stack, c, "duplicate_of", a)  # a → b → c → a
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "loop"

    # A link to a ticket the caller cannot see is not shown to them, nor removable by them.
    r = await link(stack, a, "related_to", south, actor="admin")
    assert r.status_code == 201
    hidden = r.json()["id"]
    assert hidden in [i["id"] for i in await links(stack, a, actor="admin")]
    assert hidden not in [i["id"] for i in await links(stack, a)]
    r = await stack.http.delete(f"/tickets/{a}/links/{hidden}", headers=stack.as_actor("agent-wang"))
    assert r.status_code == 404
    assert hidden in [i["id"] for i in await links(stack, a, actor="admin")]


# --- merge ---


async def _cancel_reason(stack, ticket_id: str) -> str:
    events = (await stack.get(ticket_id, actor="admin")).json()["events"]
    return next(e["data"]["reason"] for e in events if e["action"] == "cancel")


async def test_merging_a_duplicate_cancels_it_and_forwards_its_later_events(stack):
    master, dup = await ticket(stack), await ticket(stack, title="Conveyor on line 2 stopped (again)")
    assert (await merge(stack, dup, master, actor="eng-li")).status_code == 403
    assert (await merge(stack, dup, master, actor="agent-wang")).status_code == 403
    r = await merge(stack, dup, master)
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["ticket"]["ticket_id"] == dup and merged["ticket"]["status"] == "cancelled"
    assert (merged["link"]["kind"], merged["link"]["target_id"], merged["link"]["merged"]) == (
        "duplicate_of",
        master,
        True,
    )
    assert await _cancel_reason(stack, dup) == f"merged into {master}"
    assert [(i["kind"], i["direction"], i["merged"]) for i in await links(stack, master)] == [
        ("duplicate_of", "incoming", True)
    ]
    assert await audit(stack, dup) == [("ticket.merge", "sup-zhou")]

    again = await merge(stack, dup, master)  # a repeat answers as the first did
    assert again.status_code == 200 and again.json()["link"]["id"] == merged["link"]["id"]
    r = await stack.http.delete(f"/tickets/{dup}/links/{merged['link']['id']}", headers=stack.as_actor("sup-zhou"))
    assert r.status_code == 409  # a merge is final

    # The customer writes again on the duplicate: the master gets it.
    r = await stack.http.post(f"/tickets/{dup}/events", json={"name": "customer_reply", "text": "still stopped"},
                              headers=stack.as_actor("gateway-qr"))  # fmt: skip
    assert r.status_code == 202, r.text
    events = (await stack.get(master, actor="admin")).json()["events"]
    assert [e["data"].get("text") for e in events if e["action"] == "event:customer_reply"] == ["still stopped"]


async def test_merges_refused(stack, db):
    a, b = await ticket(stack), await ticket(stack)
    south = await ticket(stack, actor="agent-chen", region="south")
    assert (await merge(stack, a, south)).status_code == 404  # another region's ticket
    assert (await merge(stack, south, a)).status_code == 404
    r = await merge(stack, a, a)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "into"]
    assert (await merge(stack, a, b, actor="gateway-qr")).status_code == 403

    # Closed tickets are not merged, either way.
    closed = await ticket(stack)
    assert (await stack.act(closed, "cancel", "agent-wang", reason="wrong line")).status_code == 200
    r = await merge(stack, closed, a)
    assert r.status_code == 409 and r.json()["status"] == "cancelled"
    assert (await merge(stack, a, closed)).status_code == 409

    # Another customer's ticket is not a master.
    c1, c2 = await _customers(db)
    mine = await ticket(stack, customer={"id": c1})
    theirs = await ticket(stack, customer={"id": c2})
    r = await merge(stack, mine, theirs)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "another_customer"
    assert (await merge(stack, mine, a)).status_code == 200  # no customer on the master: fine

    # A ticket that cannot be cancelled (resolved) keeps no merge link.
    done = await ticket(stack)
    await stack.until(done, lambda t: t["active"])
    for action, body in (("claim", {}), ("start", {}), ("resolve", {"resolution": "belt re-tensioned"})):
        assert (await stack.act(done, action, "eng-li", **body)).status_code == 200
    r = await merge(stack, done, b)
    assert r.status_code == 409, r.text
    assert await links(stack, done) == []
    assert await audit(stack, done) == [("ticket.merge", "sup-zhou"), ("ticket.merge_undone", "sup-zhou")]


async def _customers(db: Database) -> tuple[str, str]:
    s, now = uuid.uuid4().hex[:8], datetime.now(UTC)
    ids = (f"cus_lk1_{s}", f"cus_lk2_{s}")
    async with db.session() as session:
        for n, cid in enumerate(ids):
            session.add(Customer(id=cid, name=f"Customer {n}", region="east", referral_code=f"LK{n}{s}",
                                 created_at=now, updated_at=now))  # fmt: skip
        await session.commit()
    return ids
