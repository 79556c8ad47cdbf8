"""/customers over HTTP against the real app (httpx) and database: records and their identities,
resolution, search with keyset pages, merging (both histories kept), orders, the CSV import
(every row or none; 5,000 rows), and the negatives — another region (404), channel accounts
and roles (403), bad input (422 naming the field), duplicates (409), oversized bodies (413).

Each test gets two regions of its own (``R`` and ``R2``) and its own people there, so what it
creates never meets another test's data; ``east`` is used where the demo's price rules matter.
"""

import csv
import io
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, select
from temporalio.client import Client

from api.app import create_app
from api.services.customer_import import MAX_IMPORT_ROWS
from models.customer_tables import Customer, CustomerIdentity
from models.customers_http import IMPORT_COLUMNS
from models.db import Database
from models.demo import demo_api_key
from models.settings import Settings
from models.tables import Actor, ApiKey, AuditLog, Region
from store import keyset

pytestmark = pytest.mark.asyncio

# The customers API never talks to Temporal: the app gets a placeholder instead of a client.
NO_TEMPORAL = cast(Client, object())
ACTORS = {  # name: (roles, regions: "R" and "R2" are the test's own)
    "agent": (["agent"], ["R"]),
    "sales": (["sales"], ["R"]),
    "eng": (["engineer"], ["R"]),
    "sup": (["supervisor"], ["R"]),
    "sup-both": (["supervisor"], ["R", "R2"]),
    "agent2": (["agent"], ["R2"]),
    "sup2": (["supervisor"], ["R2"]),
    "fin": (["finance"], ["R"]),
}
DEMO = ("admin", "agent-wang", "gateway-qr")
CODE = r"^[A-Z2-7]{8}$"


def phone() -> str:
    """A fresh mainland mobile number, written the way people type it."""
    digits = f"{random.randrange(10**8):08d}"
    return f"139 {digits[:4]} {digits[4:]}"


def e164(spoken: str) -> str:
    return "+86" + spoken.replace(" ", "")


class Api:
    def __init__(self, http: httpx.AsyncClient, db: Database, suffix: str) -> None:
        self.http, self.db, self.suffix = http, db, suffix
        self.R, self.R2 = f"c{suffix}", f"c{suffix}b"

    def who(self, actor: str) -> dict[str, str]:
        if actor in DEMO:
            return {"X-API-Key": demo_api_key(actor)}
        return {"X-API-Key": f"key-{actor}-{self.suffix}"}

    async def get(self, path: str, actor: str = "agent", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.who(actor))

    async def post(self, path: str, body: Any, actor: str = "agent") -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.who(actor))

    async def patch(self, path: str, body: Any, actor: str = "agent") -> httpx.Response:
        return await self.http.patch(path, json=body, headers=self.who(actor))

    async def create(self, actor: str = "agent", **fields: Any) -> dict[str, Any]:
        body = {"name": f"Customer {uuid.uuid4().hex[:6]}", "region": self.R, **fields}
        r = await self.post("/customers", body, actor)
        assert r.status_code == 201, r.text
        return r.json()

    async def import_csv(self, text: str | bytes, actor: str = "sup", media: str = "text/csv") -> httpx.Response:
        content = text.encode() if isinstance(text, str) else text
        headers = {**self.who(actor), "Content-Type": media}
        return await self.http.post("/customers/import", content=content, headers=headers)

    async def count(self, region: str) -> int:
        async with self.db.session() as s:
            q = select(sa.func.count()).select_from(Customer).where(col(Customer.region) == region)
            return int((await s.exec(q)).one())

    async def audit(self, target_id: str, action: str | None = None) -> list[AuditLog]:
        async with self.db.session() as s:
            q = select(AuditLog).where(col(AuditLog.target_id) == target_id)
            if action is not None:
                q = q.where(col(AuditLog.action) == action)
            return list((await s.exec(q.order_by(col(AuditLog.id)))).all())


@pytest.fixture
async def api(db: Database, database_url: str) -> AsyncIterator[Api]:
    suffix = uuid.uuid4().hex[:8]
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    a = Api(cast(httpx.AsyncClient, None), db, suffix)
    async with db.session() as s:
        s.add(Region(code=a.R, name=f"Customers test {suffix}"))
        s.add(Region(code=a.R2, name=f"Customers test {suffix} (2)"))
        await s.flush()
        for name, (roles, regions) in ACTORS.items():
            own = [a.R if r == "R" else a.R2 for r in regions]
            s.add(Actor(id=f"{name}-{suffix}", name=name, roles=roles, regions=own))
            s.add(ApiKey.for_secret(f"{name}-{suffix}", f"key-{name}-{suffix}", created_by="test"))
        await s.commit()
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            a.http = h
            yield a
    async with db.session() as s:  # leave no active test people behind for later tests' look-ups
        for actor in (await s.exec(select(Actor).where(col(Actor.id).like(f"%-{suffix}")))).all():
            actor.active = False
            s.add(actor)
        await s.commit()


# --- records, identities, referrals ---


async def test_create_normalises_identities_and_links_the_referrer(api: Api) -> None:
    spoken = phone()
    first = await api.create(
        name="Lin Hua",
        identities=[{"kind": "phone", "value": spoken}, {"kind": "email", "value": "Lin.Hua@Example.COM"}],
        consent={"sms": True, "wechat": False},
        billing_currency="usd",
        language="en",
    )
    assert first["id"].startswith("cus_") and first["region"] == api.R
    assert {(i["kind"], i["value"]) for i in first["identities"]} == {
        ("phone", e164(spoken)),
        ("email", "lin.hua@example.com"),
    }
    assert first["consent"] == {"sms": True, "email": False, "wechat": False, "app": False, "phone": False}
    assert (first["billing_currency"], first["language"], first["referrals"]) == ("USD", "en", 0)
    assert re.match(CODE, first["referral_code"]), first["referral_code"]

    second = await api.create(referred_by=first["referral_code"].lower(), kind="company")
    assert (second["referred_by"], second["kind"]) == (first["id"], "company")
    assert second["referral_code"] != first["referral_code"]
    r = await api.get(f"/customers/{first['id']}", "eng")  # any staff of the region reads
    assert r.status_code == 200 and r.json()["referrals"] == 1, r.text
    assert (r.json()["merged"], r.json()["requested_id"]) == (False, first["id"])

    [entry] = await api.audit(first["id"], "customer.create")
    assert entry.actor_id == f"agent-{api.suffix}" and entry.after is not None
    assert entry.after["identities"] == [["phone", e164(spoken)], ["email", "lin.hua@example.com"]]


async def test_bad_fields_are_422_naming_the_field(api: Api) -> None:
    cases: list[tuple[dict[str, Any], list[str | int]]] = [
        ({"identities": [{"kind": "phone", "value": "12"}]}, ["body", "identities", 0, "value"]),
        ({"identities": [{"kind": "email", "value": "not-an-email"}]}, ["body", "identities", 0, "value"]),
        ({"identities": [{"kind": "fax", "value": "1"}]}, ["body", "identities", 0, "kind"]),
        ({"billing_currency": "XXX"}, ["body", "billing_currency"]),
        ({"consent": {"fax": True}}, ["body", "consent", "fax", "[key]"]),
        ({"language": "not a language"}, ["body", "language"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"notes": "x" * 2001}, ["body", "notes"]),
        ({"kind": "robot"}, ["body", "kind"]),
        ({"referred_by": "ZZZZZZZZ"}, ["body", "referred_by"]),  # no such code
        ({"region": "atlantis"}, ["body", "region"]),
        ({"identities": [{"kind": "phone", "value": phone()}] * 21}, ["body", "identities"]),
        ({"api_key": "x"}, ["body", "api_key"]),
    ]
    twice = phone()
    cases.append(
        (
            {"identities": [{"kind": "phone", "value": twice}, {"kind": "phone", "value": e164(twice)}]},
            ["body", "identities"],
        )
    )
    for fields, loc in cases:
        body = {"name": "Bad", "region": api.R, **fields}
        r = await api.post("/customers", body)
        assert r.status_code == 422, (fields, r.text)
        assert loc in [p["loc"] for p in r.json()["detail"]], (fields, r.json())
    # Member levels are the region's price rules' (east: silver, gold, …).
    r = await api.post("/customers", {"name": "Gold", "region": "east", "member_level": "tin"}, "admin")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "member_level"], r.text
    assert "(levels: silver, gold" in r.json()["detail"][0]["msg"]
    ok = await api.post("/customers", {"name": "Gold", "region": "east", "member_level": "gold"}, "admin")
    assert ok.status_code == 201 and ok.json()["member_level"] == "gold", ok.text
    # Malformed JSON and a body over the API's limit.
    r = await api.http.post(
        "/customers", content=b'{"name": ', headers={**api.who("agent"), "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    huge = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    r = await api.http.post(
        "/customers", content=huge, headers={**api.who("agent"), "Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text
    assert await api.count(api.R) == 0  # none of it was written


async def test_an_identity_held_by_another_customer_is_409(api: Api) -> None:
    spoken = phone()
    owner = await api.create(identities=[{"kind": "phone", "value": spoken}])
    written_otherwise = "+86-" + spoken.replace(" ", "-")
    r = await api.post(
        "/customers", {"name": "Twin", "region": api.R, "identities": [{"kind": "phone", "value": written_otherwise}]}
    )
    assert r.status_code == 409 and r.json()["customer_id"] == owner["id"], r.text
    # Someone who cannot see the owner learns only that it is taken.
    r = await api.post(
        "/customers", {"name": "Twin", "region": api.R2, "identities": [{"kind": "phone", "value": spoken}]}, "agent2"
    )
    assert r.status_code == 409 and r.json()["detail"] == "identity already registered", r.text
    assert "customer_id" not in r.json() and owner["id"] not in r.text
    other = await api.create()
    r = await api.post(f"/customers/{other['id']}/identities", {"kind": "phone", "value": spoken})
    assert r.status_code == 409 and r.json()["customer_id"] == owner["id"], r.text
    # The owner adding it again: nothing changes.
    r = await api.post(f"/customers/{owner['id']}/identities", {"kind": "phone", "value": e164(spoken)})
    assert r.status_code == 200 and len(r.json()["identities"]) == 1, r.text


async def test_identities_are_added_resolved_and_removed(api: Api) -> None:
    c = await api.create()
    r = await api.post(
        f"/customers/{c['id']}/identities", {"kind": "wechat_openid", "value": "oWx-" + api.suffix}, "sales"
    )
    assert r.status_code == 201, r.text
    [ident] = [i for i in r.json()["identities"] if i["kind"] == "wechat_openid"]
    r = await api.get("/customers/resolve", kind="wechat_openid", value="oWx-" + api.suffix)
    assert r.status_code == 200 and r.json()["id"] == c["id"], r.text
    assert len(await api.audit(c["id"], "customer.identity_add")) == 1

    other = await api.create()
    r = await api.http.delete(f"/customers/{other['id']}/identities/{ident['id']}", headers=api.who("agent"))
    assert r.status_code == 404, r.text  # not that customer's
    r = await api.http.delete(f"/customers/{c['id']}/identities/{ident['id']}", headers=api.who("eng"))
    assert r.status_code == 403, r.text  # engineers read customers only
    r = await api.http.delete(f"/customers/{c['id']}/identities/{ident['id']}", headers=api.who("agent"))
    assert r.status_code == 204, r.text
    r = await api.get("/customers/resolve", kind="wechat_openid", value="oWx-" + api.suffix)
    assert r.status_code == 404, r.text
    [entry] = await api.audit(c["id"], "customer.identity_remove")
    assert entry.before == {"id": ident["id"], "kind": "wechat_openid", "value": "oWx-" + api.suffix}
    r = await api.get("/customers/resolve", kind="phone", value="12")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "value"], r.text


async def test_patch_changes_fields_and_only_leads_move_regions(api: Api) -> None:
    c = await api.create("sup", consent={"sms": True}, member_level="silver")
    r = await api.patch(
        f"/customers/{c['id']}",
        {"name": "Renamed", "consent": {"wechat": True}, "member_level": None, "notes": "VIP"},
        "sup",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["member_level"], body["notes"]) == ("Renamed", None, "VIP")
    assert body["consent"]["sms"] is True and body["consent"]["wechat"] is True  # only the channels named change
    [entry] = await api.audit(c["id"], "customer.update")
    assert entry.before is not None and entry.after is not None
    assert set(entry.after) == {"name", "member_level", "notes", "consent"} and entry.before["name"] == c["name"]
    # Nothing changed: no audit entry.
    r = await api.patch(f"/customers/{c['id']}", {"name": "Renamed"})
    assert r.status_code == 200 and len(await api.audit(c["id"], "customer.update")) == 1
    for fields, loc in (
        ({"name": None}, ["body", "name"]),
        ({"billing_currency": "ABC"}, ["body", "billing_currency"]),
    ):
        r = await api.patch(f"/customers/{c['id']}", fields)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, r.text

    r = await api.patch(f"/customers/{c['id']}", {"region": api.R2}, "agent")
    assert r.status_code == 403, r.text
    r = await api.patch(f"/customers/{c['id']}", {"region": api.R2}, "sup")
    assert r.status_code == 403, r.text  # not a region of this supervisor
    r = await api.patch(f"/customers/{c['id']}", {"region": api.R2}, "sup-both")
    assert r.status_code == 200 and r.json()["region"] == api.R2, r.text
    r = await api.get(f"/customers/{c['id']}", "agent")
    assert r.status_code == 404, r.text  # moved out of the agent's region


# --- scope and roles ---


async def test_member_level_is_set_by_leads_and_finance_only(api: Api) -> None:
    """The member level is a discount on every statement: agents and sales keep the rest of the
    record, but setting the level (on create or by PATCH) is a 403 naming it."""
    for front in ("agent", "sales"):
        r = await api.post("/customers", {"name": "Gold", "region": api.R, "member_level": "gold"}, front)
        assert r.status_code == 403 and r.json()["field"] == "member_level", r.text
        assert "member_level" in r.json()["detail"]
    assert await api.count(api.R) == 0
    c = await api.create("sup", member_level="silver")
    assert c["member_level"] == "silver"
    for front in ("agent", "sales"):
        for level in ("gold", None):
            r = await api.patch(f"/customers/{c['id']}", {"member_level": level, "notes": "x"}, front)
            assert r.status_code == 403 and r.json()["field"] == "member_level", r.text
    r = await api.get(f"/customers/{c['id']}")
    assert (r.json()["member_level"], r.json()["notes"]) == ("silver", c["notes"])  # nothing changed
    assert await api.audit(c["id"], "customer.update") == []
    # The same level sent back with an edit is not a change.
    r = await api.patch(f"/customers/{c['id']}", {"member_level": "silver", "notes": "VIP"}, "agent")
    assert r.status_code == 200 and r.json()["notes"] == "VIP", r.text
    r = await api.patch(f"/customers/{c['id']}", {"member_level": "gold"}, "fin")
    assert r.status_code == 200 and r.json()["member_level"] == "gold", r.text
    r = await api.patch(f"/customers/{c['id']}", {"notes": "finance"}, "fin")
    assert r.status_code == 403  # finance sets the level, not the rest of the record
    r = await api.post("/customers", {"name": "Fin", "region": api.R}, "fin")
    assert r.status_code == 403
    r = await api.patch(f"/customers/{c['id']}", {"member_level": None}, "sup")
    assert r.status_code == 200 and r.json()["member_level"] is None, r.text
    entries = await api.audit(c["id"], "customer.update")
    assert [(e.actor_id, e.after) for e in entries] == [
        (f"agent-{api.suffix}", {"notes": "VIP"}),
        (f"fin-{api.suffix}", {"member_level": "gold"}),
        (f"sup-{api.suffix}", {"member_level": None}),
    ]


async def test_another_region_is_404_and_channel_accounts_403(api: Api) -> None:
    spoken = phone()
    c = await api.create(identities=[{"kind": "phone", "value": spoken}])
    cid = c["id"]
    outsider = "agent2"
    assert (await api.get(f"/customers/{cid}", outsider)).status_code == 404
    assert (await api.patch(f"/customers/{cid}", {"name": "x"}, outsider)).status_code == 404
    assert (await api.get("/customers/resolve", outsider, kind="phone", value=spoken)).status_code == 404
    assert (await api.get(f"/customers/{cid}/orders", outsider)).status_code == 404
    r = await api.post(f"/customers/{cid}/identities", {"kind": "email", "value": "x@example.com"}, outsider)
    assert r.status_code == 404
    theirs = await api.create("agent2", region=api.R2)
    r = await api.post(f"/customers/{theirs['id']}/merge", {"from": cid}, "sup2")
    assert r.status_code == 404, r.text  # the other record is outside the caller's regions
    r = await api.post(f"/customers/{cid}/merge", {"from": theirs["id"]}, "sup2")
    assert r.status_code == 404, r.text
    listed = await api.get("/customers", outsider, phone=spoken)
    assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
    assert (await api.get("/customers", outsider, region=api.R)).status_code == 403
    # Creating in a region that is not the caller's.
    r = await api.post("/customers", {"name": "Elsewhere", "region": api.R2}, "agent")
    assert r.status_code == 403, r.text
    # A global admin sees it; a channel account sees nothing at all.
    assert (await api.get(f"/customers/{cid}", "admin")).status_code == 200
    for method, path, body in (
        ("GET", f"/customers/{cid}", None),
        ("GET", "/customers", None),
        ("POST", "/customers", {"name": "Bot", "region": api.R}),
        ("GET", "/customers/resolve?kind=phone&value=" + e164(spoken), None),
    ):
        r = await api.http.request(method, path, json=body, headers=api.who("gateway-qr"))
        assert r.status_code == 403, (path, r.text)
    # Engineers read but do not write.
    assert (await api.get(f"/customers/{cid}", "eng")).status_code == 200
    assert (await api.patch(f"/customers/{cid}", {"name": "x"}, "eng")).status_code == 403
    assert (await api.post("/customers", {"name": "x", "region": api.R}, "eng")).status_code == 403
    assert (await api.http.get(f"/customers/{cid}")).status_code == 401


# --- search ---


async def test_search_by_name_and_identity_in_keyset_pages(api: Api) -> None:
    tag = f"Paging{api.suffix}"
    made = [await api.create(name=f"{tag} {i}") for i in range(5)]
    spoken = phone()
    await api.create(
        name=f"Other {api.suffix}",
        identities=[{"kind": "phone", "value": spoken}, {"kind": "app_user", "value": "u-" + api.suffix}],
    )
    seen, cursor = [], None
    while True:
        r = await api.get("/customers", q=tag.upper(), limit=2, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= 2
        seen += [c["id"] for c in r.json()["items"]]
        if not (cursor := r.json()["next_cursor"]):
            break
    assert seen == [c["id"] for c in sorted(made, key=lambda c: (c["name"], c["id"]))]
    r = await api.get("/customers", phone=e164(spoken))
    assert [c["name"] for c in r.json()["items"]] == [f"Other {api.suffix}"], r.text
    r = await api.get("/customers", identity=f"app_user:u-{api.suffix}", region=api.R)
    assert [c["name"] for c in r.json()["items"]] == [f"Other {api.suffix}"], r.text
    assert len((await api.get("/customers", region=api.R, limit=200)).json()["items"]) == 6
    for params, loc in (
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"identity": "fax:123"}, ["query", "identity"]),
        ({"phone": "12"}, ["query", "phone"]),
        ({"limit": 0}, ["query", "limit"]),
    ):
        r = await api.get("/customers", **params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (params, r.text)


# --- merging ---


async def order(api: Api, cid: str, ref: str, placed_at: str, **fields: Any) -> httpx.Response:
    """An order staff record (source ``crm``: not a registered business source, whose orders only
    its signed events write)."""
    body = {"source": "crm", "external_ref": ref, "placed_at": placed_at, "status": "paid", **fields}
    return await api.post(f"/customers/{cid}/orders", body)


async def test_merge_keeps_both_histories_and_resolution_finds_the_survivor(api: Api) -> None:
    pa, pb = phone(), phone()
    a = await api.create(identities=[{"kind": "phone", "value": pa}], consent={"sms": False})
    b = await api.create(
        identities=[{"kind": "phone", "value": pb}], consent={"sms": True, "wechat": True}, notes="from B"
    )
    refs = (f"A-{api.suffix}", f"B-{api.suffix}")
    assert (await order(api, a["id"], refs[0], "2026-03-01T10:00:00+08:00")).status_code == 201
    assert (await order(api, b["id"], refs[1], "2026-04-01T10:00:00+08:00")).status_code == 201

    assert (await api.post(f"/customers/{a['id']}/merge", {"from": b["id"]}, "agent")).status_code == 403
    assert (await api.post(f"/customers/{a['id']}/merge", {"from": a["id"]}, "sup")).status_code == 409
    r = await api.post(f"/customers/{a['id']}/merge", {"from": b["id"]}, "sup")
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["merged_ids"] == [b["id"]]
    assert {i["value"] for i in merged["identities"]} == {e164(pa), e164(pb)}
    assert merged["consent"]["sms"] is False and merged["consent"]["wechat"] is True  # the survivor's answer wins
    assert merged["notes"] == "from B"  # a gap filled from the other record

    r = await api.get(f"/customers/{b['id']}")
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["requested_id"], r.json()["merged"]) == (a["id"], b["id"], True)
    r = await api.get("/customers/resolve", kind="phone", value=pb)
    assert r.status_code == 200 and r.json()["id"] == a["id"], r.text
    for cid in (a["id"], b["id"]):
        r = await api.get(f"/customers/{cid}/orders")
        assert [(o["external_ref"], o["customer_id"]) for o in r.json()["items"]] == [
            (refs[1], b["id"]),
            (refs[0], a["id"]),
        ], r.text
    # The merged record is no longer listed, and takes no writes.
    assert [c["id"] for c in (await api.get("/customers", phone=pb)).json()["items"]] == [a["id"]]
    r = await api.patch(f"/customers/{b['id']}", {"name": "x"})
    assert r.status_code == 409 and r.json()["merged_into"] == a["id"], r.text
    # Into a merged record, or a record into its own descendant: refused.
    r = await api.post(f"/customers/{b['id']}/merge", {"from": a["id"]}, "sup")
    assert r.status_code == 409 and r.json()["merged_into"] == a["id"], r.text
    r = await api.post(f"/customers/{a['id']}/merge", {"from": b["id"]}, "sup")
    assert r.status_code == 409, r.text  # already merged
    [entry] = await api.audit(a["id"], "customer.merge")
    assert entry.after is not None and entry.after["identities_moved"] == 1 and entry.after["merged_ids"] == [b["id"]]

    # Merging the survivor into a third record carries the first merge along.
    c = await api.create()
    r = await api.post(f"/customers/{c['id']}/merge", {"from": a["id"]}, "sup")
    assert r.status_code == 200 and sorted(r.json()["merged_ids"]) == sorted([a["id"], b["id"]]), r.text
    assert (await api.get("/customers/resolve", kind="phone", value=pb)).json()["id"] == c["id"]
    assert len((await api.get(f"/customers/{c['id']}/orders")).json()["items"]) == 2


async def test_merge_drops_a_referral_that_would_be_the_customer_referring_themselves(api: Api) -> None:
    referrer = await api.create()
    referred = await api.create(referred_by=referrer["referral_code"])
    assert (await api.get(f"/customers/{referrer['id']}")).json()["referrals"] == 1
    r = await api.post(f"/customers/{referrer['id']}/merge", {"from": referred["id"]}, "sup")
    assert r.status_code == 200, r.text
    assert (r.json()["referred_by"], r.json()["referrals"]) == (None, 0)
    [entry] = await api.audit(referrer["id"], "customer.merge")
    assert entry.after is not None and entry.after["referral_dropped"] == referrer["id"]


# --- orders ---


async def test_orders_are_idempotent_by_source_and_ref_and_follow_status(api: Api) -> None:
    c = await api.create()
    ref = f"SO-{api.suffix}"
    first = await order(api, c["id"], ref, "2026-05-01T09:00:00+08:00", amount="1299.5", currency="CNY")
    assert first.status_code == 201, first.text
    assert (first.json()["amount"], first.json()["placed_at"]) == ("1299.50", "2026-05-01T01:00:00Z")
    again = await order(api, c["id"], ref, "2026-05-01T09:00:00+08:00", amount="1299.50", currency="CNY")
    assert again.status_code == 200 and again.json() == first.json(), again.text
    shipped = await order(
        api, c["id"], ref, "2026-05-01T09:00:00+08:00", amount="1299.50", currency="CNY", status="shipped"
    )
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped", shipped.text
    assert shipped.json()["id"] == first.json()["id"]
    other = await api.create()
    r = await order(api, other["id"], ref, "2026-05-01T09:00:00+08:00")
    assert r.status_code == 409 and c["id"] in r.json()["detail"], r.text
    for fields, loc in (
        ({"amount": 12.5, "currency": "CNY"}, ["body", "amount"]),
        ({"amount": "12.50"}, ["body", "currency"]),
        ({"amount": "12.505", "currency": "CNY"}, ["body", "currency"]),
        ({"amount": "NaN", "currency": "CNY"}, ["body", "amount"]),
        ({"amount": "1e30", "currency": "CNY"}, ["body", "amount"]),
        ({"placed_at": "2026-05-01T09:00:00"}, ["body", "placed_at"]),
        ({"placed_at": "9999-12-31T23:00:00-05:00"}, ["body", "placed_at"]),
        ({"asset_id": "ast_nope"}, ["body", "asset_id"]),
        ({"source": "ERP!"}, ["body", "source"]),
    ):
        body = {
            "source": "crm",
            "external_ref": f"X-{uuid.uuid4().hex[:6]}",
            "placed_at": "2026-05-01T09:00:00Z",
            **fields,
        }
        r = await api.post(f"/customers/{c['id']}/orders", body)
        assert r.status_code == 422 and loc in [p["loc"] for p in r.json()["detail"]], (fields, r.text)
    for day in range(2, 6):
        assert (await order(api, c["id"], f"P{day}-{api.suffix}", f"2026-05-0{day}T09:00:00Z")).status_code == 201
    pages, cursor = [], None
    while True:
        r = await api.get(f"/customers/{c['id']}/orders", limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append([o["external_ref"] for o in r.json()["items"]])
        if not (cursor := r.json()["next_cursor"]):
            break
    assert sum(pages, []) == [f"P{d}-{api.suffix}" for d in (5, 4, 3, 2)] + [ref]
    for forged in (keyset.encode("9999-12-31T23:59:59-10:00", 1), keyset.encode("x", 1), "%%%"):
        r = await api.get(f"/customers/{c['id']}/orders", cursor=forged)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"], (forged, r.text)


# --- CSV import ---

HEADER = ",".join(IMPORT_COLUMNS)


def csv_text(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER.split(","), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def row(region: str, **cells: str) -> dict[str, str]:
    return {"name": f"Imported {uuid.uuid4().hex[:6]}", "region": region, "phone": phone(), **cells}


async def test_orders_of_a_registered_business_source_are_not_recorded_by_staff(api: Api) -> None:
    """A registered source's orders come from its signed events only: staff naming its code (to
    pre-create one on another customer, or to overwrite what the source reported) get a 422 on
    ``source`` — whoever they are, and whether the source is active or not."""
    code = f"erp-{api.suffix}"
    source = {"name": "ERP", "channel": "erp", "actor_id": "gateway-erp"}
    r = await api.http.put(f"/integrations/{code}", json=source, headers=api.who("admin"))
    assert r.status_code == 201, r.text
    c = await api.create()
    body = {"source": code, "external_ref": f"SO-{api.suffix}", "placed_at": "2026-05-01T09:00:00Z"}
    for actor in ("agent", "sales", "sup"):
        r = await api.post(f"/customers/{c['id']}/orders", body, actor)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "source"], r.text
        assert r.json()["detail"][0]["type"] == "integration_source"
    r = await api.http.put(f"/integrations/{code}", json=source | {"active": False}, headers=api.who("admin"))
    assert r.status_code == 200, r.text
    r = await order(api, c["id"], f"SO-{api.suffix}", "2026-05-01T09:00:00Z", source=code)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "source"], r.text
    assert (await api.get(f"/customers/{c['id']}/orders")).json()["items"] == []
    r = await order(api, c["id"], f"SO-{api.suffix}", "2026-05-01T09:00:00Z", source="store-counter")
    assert r.status_code == 201, r.text  # any other source is staff's to record


async def test_import_with_bad_rows_writes_nothing_and_reports_each(api: Api) -> None:
    taken = phone()
    referrer = await api.create(identities=[{"kind": "phone", "value": taken}])
    dup = phone()
    rows = [
        row(api.R, referred_by_code=referrer["referral_code"], consent_sms="yes", email="A@Example.com"),  # 2: good
        row(api.R, phone="12"),  # 3
        row("atlantis"),  # 4
        row(api.R2),  # 5: not the importer's region
        row(api.R, phone=dup),  # 6: good so far
        row(api.R, phone=e164(dup)),  # 7: repeats row 6
        row(api.R, phone=taken),  # 8: registered already
        row(api.R, consent_sms="maybe"),  # 9
        row(api.R, referred_by_code="ZZZZZZZZ"),  # 10
        row(api.R, name=""),  # 11
        row(api.R, billing_currency="XYZ", kind="robot"),  # 12
    ]
    text = csv_text(rows) + "too,few\n"  # 13
    before = await api.count(api.R)
    r = await api.import_csv(text)
    assert r.status_code == 422, r.text
    found = {(p["row"], p["column"]) for p in r.json()["detail"]}
    assert found == {
        (3, "phone"),
        (4, "region"),
        (5, "region"),
        (7, "phone"),
        (8, "phone"),
        (9, "consent_sms"),
        (10, "referred_by_code"),
        (11, "name"),
        (12, "billing_currency"),
        (12, "kind"),
        (13, None),
    }, r.json()
    by_place = {(p["row"], p["column"]): p for p in r.json()["detail"]}
    assert by_place[(8, "phone")]["msg"].endswith(f"already registered to customer {referrer['id']}")
    assert "repeats row 6" in by_place[(7, "phone")]["msg"]
    assert by_place[(3, "phone")]["loc"] == ["body", 3, "phone"]
    assert await api.count(api.R) == before  # nothing half-imported
    r = await api.get("/customers/resolve", kind="email", value="a@example.com")
    assert r.status_code == 404


async def test_import_of_5000_rows_in_one_transaction(api: Api) -> None:
    referrer = await api.create()
    base = random.randrange(10**8, 9 * 10**8)
    rows = [
        {
            "name": f"Bulk {i:05d}",
            "kind": "company" if i % 10 == 0 else "person",
            "region": api.R,
            "phone": f"+86 13{base + i:09d}",
            "email": f"b{i}-{api.suffix}@example.com" if i % 2 else "",
            "wechat_openid": f"o{api.suffix}{i:06d}" if i % 3 == 0 else "",
            "member_level": "gold" if i % 7 == 0 else "",
            "referred_by_code": referrer["referral_code"] if i % 50 == 0 else "",
            "consent_sms": "true" if i % 2 else "false",
            "consent_wechat": "1" if i % 3 == 0 else "",
            "consent_email": "",
            "billing_currency": "CNY" if i % 5 == 0 else "",
            "language": "zh",
            "external_id": f"crm-{i}",
        }
        for i in range(5000)
    ]
    text = csv_text(rows)
    assert len(text.encode()) < 1_000_000, len(text.encode())  # under the API's body limit
    started = time.monotonic()
    r = await api.import_csv(text)
    elapsed = time.monotonic() - started
    print(f"import of 5,000 rows ({len(text.encode())} bytes): {elapsed:.2f} s")
    assert r.status_code == 200, r.text[:2000]
    body = r.json()
    assert (body["imported"], body["identities"]) == (5000, 5000 + 2500 + 1667)
    assert [c["row"] for c in body["customers"]] == list(range(2, 5002))
    assert body["customers"][17]["external_id"] == "crm-17"
    assert len({c["referral_code"] for c in body["customers"]}) == 5000
    assert elapsed < 30, elapsed
    assert await api.count(api.R) == 5001
    r = await api.get("/customers/resolve", kind="phone", value=f"13{base + 4321:09d}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["name"], got["consent"]["sms"], got["id"]) == ("Bulk 04321", True, body["customers"][4321]["id"])
    assert (await api.get(f"/customers/{referrer['id']}")).json()["referrals"] == 100
    [entry] = await api.audit(body["import_id"], "customer.import")
    assert entry.after == {"imported": 5000, "identities": 9167, "regions": {api.R: 5000}}
    async with api.db.session() as s:
        q = (
            select(sa.func.count())
            .select_from(CustomerIdentity)
            .where(col(CustomerIdentity.value).like(f"%{api.suffix}%"))
        )
        assert (await s.exec(q)).one() == 2500 + 1667
    # The same file again: every identity is now taken, so every row is refused and nothing is written.
    r = await api.import_csv(text)
    assert r.status_code == 422 and r.json()["detail"][-1]["type"] == "more", r.text[:500]
    assert await api.count(api.R) == 5001


async def test_import_refuses_other_roles_media_and_oversized_or_malformed_files(api: Api) -> None:
    good = csv_text([row(api.R)])
    assert (await api.import_csv(good, "agent")).status_code == 403
    assert (await api.import_csv(good, "gateway-qr")).status_code == 403
    assert (await api.import_csv(good, media="application/json")).status_code == 415
    r = await api.import_csv("name,region\n" + "x,y\n" * (MAX_IMPORT_ROWS + 1))
    assert r.status_code == 413, r.text
    r = await api.import_csv("name,region\n" + ("x" * 100 + f",{api.R}\n") * 11_000)
    assert r.status_code == 413, r.text  # over the API's body limit
    for text, loc in (
        ("", ["body", 1]),
        ("name,region\n", ["body", 2]),
        ("name,colour\nx,red\n", ["body", 1, "colour"]),
        ("name,name,region\n", ["body", 1, "name"]),
        ("phone\n123\n", ["body", 1, "name"]),
        (b"name,region\n\xff\xfe,x\n", ["body", 1]),
        ('name,region\n"unclosed,x\n' + "y" * 200_000, ["body"]),
    ):
        r = await api.import_csv(text)
        assert r.status_code == 422, (text[:40], r.text)
        assert any(p["loc"][: len(loc)] == loc for p in r.json()["detail"]), (text[:40], r.json())
    started = time.monotonic()
    r = await api.import_csv(",".join(f"c{i}" for i in range(100_000)) + "\n")  # a header 100,000 columns wide
    assert r.status_code == 422 and len(r.json()["detail"]) <= 500 and time.monotonic() - started < 5, r.text[:300]
    assert await api.count(api.R) == 0
    r = await api.import_csv(good)
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text
