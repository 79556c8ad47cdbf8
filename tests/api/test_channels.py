"""Inbound customer channels (issue #11, part 5): ``POST /channels/{code}/inbound`` signed with
the channel's secret, the WeChat echo handshake, the admin registry, and the dispatcher that
turns a message into a new ticket, an answer, a confirmation, a rejection or a photo by the
customer's state. Requests that must not get in are checked against every table's row count;
what a message does is checked on real tickets (the ``stack`` fixture: a worker on the dev
server) wherever a workflow is involved."""

import asyncio
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, select
from temporalio.client import Client

from api.app import create_app
from domain.identities import normalize
from domain.inbound_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from models import demo
from models.channel_tables import ChannelDelivery
from models.customer_tables import Asset, Customer, CustomerIdentity
from models.db import Database
from models.settings import Settings
from models.tables import AuditLog, Ticket
from models.ticket import TicketState

pytestmark = pytest.mark.asyncio

NO_TEMPORAL = cast(Client, object())  # the registry and the refusals never reach Temporal
ADMIN = {"X-API-Key": demo.demo_api_key("admin")}
GATEWAY = "gateway-qr"  # a channel account of every region (demo data)


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def _phone() -> str:
    return f"+86 139 {secrets.randbelow(10_000):04d} {secrets.randbelow(10_000):04d}"


async def register(http: httpx.AsyncClient, code: str, kind: str, **body: Any) -> str:
    """Register a channel as the admin; its secret."""
    payload = {"kind": kind, "actor_id": GATEWAY, "default_region": "east", **body}
    r = await http.put(f"/channels/{code}", json=payload, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()["secret"]


async def inbound(
    http: httpx.AsyncClient, code: str, secret: str, payload: Any, *, at: int | None = None, raw: bytes | None = None
) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    ts = int(time.time()) if at is None else at
    headers = {SIGNATURE_HEADER: sign(secret, ts, body), TIMESTAMP_HEADER: str(ts), "Content-Type": "application/json"}
    return await http.post(f"/channels/{code}/inbound", content=body, headers=headers)


def wechat_text(openid: str, text: str, msg_id: int | None = None) -> dict[str, Any]:
    return {
        "ToUserName": "gh_ticketflow",
        "FromUserName": openid,
        "CreateTime": int(time.time()),
        "MsgType": "text",
        "Content": text,
        "MsgId": msg_id or secrets.randbelow(2**62),
    }


def wechat_image(openid: str, url: str) -> dict[str, Any]:
    return {**wechat_text(openid, ""), "MsgType": "image", "PicUrl": url, "Content": None}


async def table_counts(db: Database) -> dict[str, int]:
    async with db.session() as s:
        return {
            t.name: (await s.exec(sa.select(sa.func.count()).select_from(t))).one()[0]  # type: ignore[call-overload]
            for t in SQLModel.metadata.sorted_tables
        }


async def add_customer(db: Database, region: str = "east", phone: str | None = None, openid: str | None = None):
    """A customer (and their identities), as the customers API would have stored it."""
    now = datetime.now(UTC)
    cid = f"cus_{secrets.token_hex(8)}"
    async with db.session() as s:
        s.add(
            Customer(
                id=cid,
                name=f"Test customer {cid[-4:]}",
                region=region,
                referral_code=f"T{secrets.token_hex(6).upper()}",
                created_at=now,
                updated_at=now,
            )
        )
        await s.flush()
        for kind, value in (("phone", phone), ("wechat_openid", openid)):
            if value:
                s.add(CustomerIdentity(customer_id=cid, kind=kind, value=normalize(kind, value), created_at=now))
        await s.commit()
    return cid


async def add_asset(db: Database, customer_id: str, region: str = "east") -> tuple[str, str]:
    """(asset id, QR code) of a machine of the customer, in warranty."""
    aid, qr = f"ast_{secrets.token_hex(8)}", f"qr-{secrets.token_hex(12)}"
    async with db.session() as s:
        s.add(
            Asset(
                id=aid,
                customer_id=customer_id,
                region=region,
                serial=f"TF-{secrets.randbelow(10**8):08d}",
                model="Compressor C-3",
                qr_code=qr,
                site_address="1 Test Road",
                lat=31.23,
                lon=121.47,
                installed_on=date.today() - timedelta(days=100),
                warranty_end=date.today() + timedelta(days=265),
                created_at=datetime.now(UTC),
            )
        )
        await s.commit()
    return aid, qr


async def deliveries(db: Database, code: str) -> list[ChannelDelivery]:
    async with db.session() as s:
        return list((await s.exec(select(ChannelDelivery).where(ChannelDelivery.channel == code))).all())


async def customers_of(db: Database, kind: str, value: str) -> list[str]:
    async with db.session() as s:
        q = select(CustomerIdentity.customer_id).where(CustomerIdentity.kind == kind, CustomerIdentity.value == value)
        return list((await s.exec(q)).all())


async def snapshot_until(db: Database, ticket_id: str, check, timeout: float = 20.0) -> TicketState:
    """The read model's state of a ticket once ``check`` holds (what the dispatcher reads)."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.session() as s:
            row = await s.get(Ticket, ticket_id)
            state = TicketState.model_validate(row.snapshot) if row is not None else None
        if state is not None and check(state) or time.monotonic() > deadline:
            assert state is not None
            return state
        await asyncio.sleep(0.05)


async def ticket_events(http: httpx.AsyncClient, ticket_id: str) -> list[dict[str, Any]]:
    r = await http.get(f"/tickets/{ticket_id}/events", params={"limit": 500}, headers=ADMIN)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["action"].startswith("event:")]


@pytest.fixture
async def plain(db: Database, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app without Temporal: for what must be refused before any ticket is touched."""
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield h


# --- refused at the door: 401, nothing written ---


async def test_bad_signatures_unknown_and_inactive_channels_are_one_401_and_leave_no_trace(
    plain: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
):
    code = f"wx-{_suffix()}"
    secret = await register(plain, code, "wechat", default_ticket_type="general")
    inactive = f"wx-{_suffix()}"
    inactive_secret = await register(plain, inactive, "wechat")
    r = await plain.put(
        f"/channels/{inactive}",
        json={"kind": "wechat", "actor_id": GATEWAY, "default_region": "east", "active": False},
        headers=ADMIN,
    )
    assert r.status_code == 200 and r.json()["active"] is False and "secret" not in r.json()
    message = wechat_text(f"o{_suffix()}", "The heater is broken")
    body = json.dumps(message).encode()
    now = int(time.time())
    before = await table_counts(db)
    caplog.set_level(logging.WARNING, logger="api.services.channel_registry")

    attempts = {
        "wrong secret": await inbound(plain, code, "not-the-secret", message),
        # Well past the ±300 s window: `now` is a truncated second taken before these requests,
        # so at ±301 the server's clock, a second later, could put the "ahead" one inside it.
        "stale timestamp": await inbound(plain, code, secret, message, at=now - 330),
        "timestamp ahead": await inbound(plain, code, secret, message, at=now + 330),
        "tampered body": await plain.post(
            f"/channels/{code}/inbound",
            content=body.replace(b"broken", b"BROKEN"),
            headers={SIGNATURE_HEADER: sign(secret, now, body), TIMESTAMP_HEADER: str(now)},
        ),
        "no headers": await plain.post(f"/channels/{code}/inbound", content=body),
        "signature without v1": await plain.post(
            f"/channels/{code}/inbound",
            content=body,
            headers={SIGNATURE_HEADER: sign(secret, now, body).removeprefix("v1="), TIMESTAMP_HEADER: str(now)},
        ),
        "unknown channel": await inbound(plain, f"nope-{_suffix()}", secret, message),
        "inactive channel": await inbound(plain, inactive, inactive_secret, message),
    }
    for what, r in attempts.items():
        assert r.status_code == 401, (what, r.status_code, r.text)
        assert r.json() == {"detail": "invalid signature", "code": "unauthenticated"}, what  # one answer for all
    assert await table_counts(db) == before  # not a row anywhere: no customer, delivery, ticket or audit entry
    reasons = " ".join(rec.getMessage() for rec in caplog.records)
    for reason in ("signature does not match", "outside the replay window", "unknown channel", "inactive"):
        assert reason in reasons
    assert secret not in reasons and inactive_secret not in reasons


async def test_malformed_and_oversized_messages_are_refused_after_the_signature(plain: httpx.AsyncClient, db: Database):
    code = f"qr-{_suffix()}"
    secret = await register(plain, code, "qr_form", default_ticket_type="equipment_repair")
    before = await table_counts(db)
    r = await inbound(plain, code, secret, {"submission_id": "s1", "phone": _phone()})
    assert r.status_code == 422
    assert ["body", "qr_code"] in [p["loc"] for p in r.json()["detail"]]
    r = await inbound(plain, code, secret, None, raw=b"{not json")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = await inbound(
        plain, code, secret, {"submission_id": "s2", "qr_code": "x", "phone": _phone(), "photo_url": "javascript:x"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "photo_url"]
    r = await inbound(plain, code, secret, {"submission_id": "s3", "qr_code": "nope", "phone": "12"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "phone"]  # not a phone number
    r = await inbound(plain, code, secret, {"submission_id": "s4", "qr_code": "no-such-sticker", "phone": _phone()})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "qr_code"]  # no such asset
    big = {"submission_id": "s5", "qr_code": "x", "phone": _phone(), "text": "x" * 70_000}
    r = await inbound(plain, code, secret, big)
    assert r.status_code == 413
    assert await table_counts(db) == before


async def test_wechat_echo_handshake(plain: httpx.AsyncClient):
    code = f"wx-{_suffix()}"
    token = await register(plain, code, "wechat")

    def params(secret: str, at: int | None = None, echo: str = "echo123") -> dict[str, str]:
        ts, nonce = str(at if at is not None else int(time.time())), secrets.token_hex(4)
        sig = hashlib.sha1("".join(sorted([secret, ts, nonce])).encode()).hexdigest()
        return {"signature": sig, "timestamp": ts, "nonce": nonce, "echostr": echo}

    r = await plain.get(f"/channels/{code}/inbound", params=params(token))
    assert r.status_code == 200 and r.text == "echo123" and r.headers["content-type"].startswith("text/plain")
    for bad in (
        params("wrong-token"),
        params(token, at=int(time.time()) - 3600),
        {**params(token), "nonce": "other"},
        {k: v for k, v in params(token).items() if k != "signature"},
        params(token, echo="<script>"),
    ):
        assert (await plain.get(f"/channels/{code}/inbound", params=bad)).status_code == 401, bad
    assert (await plain.get(f"/channels/nope-{_suffix()}/inbound", params=params(token))).status_code == 401
    qr = f"qr-{_suffix()}"  # a channel whose platform makes no handshake
    qr_secret = await register(plain, qr, "qr_form")
    assert (await plain.get(f"/channels/{qr}/inbound", params=params(qr_secret))).status_code == 401

    rotated = await plain.post(f"/channels/{code}/rotate-secret", json={"grace_seconds": 600}, headers=ADMIN)
    new_token = rotated.json()["secret"]
    for t in (new_token, token):  # the previous token still works during the grace period
        r = await plain.get(f"/channels/{code}/inbound", params=params(t))
        assert r.status_code == 200 and r.text == "echo123"


async def test_a_timestamp_of_non_ascii_digits_is_the_one_401_for_known_and_unknown_channels(
    plain: httpx.AsyncClient, db: Database
):
    """``²`` passes ``str.isdigit`` but not ``int``: it was a 500 for a channel that exists and a
    401 for one that does not (telling which codes exist). Now one 401 for both, nothing written."""
    code = f"wx-{_suffix()}"
    token = await register(plain, code, "wechat", default_ticket_type="general")
    unknown = f"nope-{_suffix()}"
    body = json.dumps(wechat_text(f"o{_suffix()}", "The heater is broken")).encode()
    before = await table_counts(db)
    for ts in (b"\xb2", b"1\xb2", b"\xb9\xb2\xb3"):  # ², 1², ¹²³ as the header's latin-1 bytes
        for where in (code, unknown):
            r = await plain.post(
                f"/channels/{where}/inbound",
                content=body,
                headers=[
                    (SIGNATURE_HEADER.encode(), sign(token, int(time.time()), body).encode()),
                    (TIMESTAMP_HEADER.encode(), ts),
                ],
            )
            assert r.status_code == 401, (where, ts, r.status_code, r.text)
            assert r.json() == {"detail": "invalid signature", "code": "unauthenticated"}
    for ts_text in ("²", "¹²³", "１２３", "١٢٣"):
        nonce = "n0nce"
        sig = hashlib.sha1("".join(sorted([token, ts_text, nonce])).encode()).hexdigest()
        params = {"signature": sig, "timestamp": ts_text, "nonce": nonce, "echostr": "echo123"}
        answers = [await plain.get(f"/channels/{where}/inbound", params=params) for where in (code, unknown)]
        assert [a.status_code for a in answers] == [401, 401], (ts_text, [a.text for a in answers])
        assert answers[0].json() == answers[1].json()
    assert await table_counts(db) == before


# --- the registry ---


async def test_only_admins_register_and_the_secret_is_shown_once(plain: httpx.AsyncClient, db: Database):
    code = f"app-{_suffix()}"
    body = {"kind": "app", "actor_id": GATEWAY, "default_region": "east", "name": "Customer app"}
    for who in ("agent-wang", "sup-zhou", GATEWAY):  # a channel account is refused staff endpoints
        r = await plain.put(f"/channels/{code}", json=body, headers={"X-API-Key": demo.demo_api_key(who)})
        assert r.status_code == 403, (who, r.text)
    assert (await plain.put(f"/channels/{code}", json=body)).status_code == 401
    for field, value, loc in (
        ("actor_id", "agent-wang", "actor_id"),  # a person, not a channel account
        ("actor_id", "nobody", "actor_id"),
        ("default_region", "atlantis", "default_region"),
        ("adapter", "wechat", "adapter"),  # a WeChat adapter for an app channel
        ("default_ticket_type", "nope", "default_ticket_type"),
        ("default_ticket_type", "discount_approval", "default_ticket_type"),  # raised by agents only
        ("kind", "fax", "kind"),
    ):
        r = await plain.put(f"/channels/{code}", json={**body, field: value}, headers=ADMIN)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == loc, (field, r.text)
    assert (await plain.put("/channels/Bad Code!", json=body, headers=ADMIN)).status_code == 422

    created = await plain.put(f"/channels/{code}", json=body, headers=ADMIN)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert len(secret) >= 40 and created.json()["adapter"] == "app"
    shown = await plain.get(f"/channels/{code}", headers=ADMIN)
    assert shown.status_code == 200 and "secret" not in shown.json() and secret not in shown.text
    assert secret not in (await plain.get("/channels", headers=ADMIN)).text
    again = await plain.put(f"/channels/{code}", json={**body, "name": "App"}, headers=ADMIN)
    assert again.status_code == 200 and "secret" not in again.json() and again.json()["name"] == "App"
    assert (
        await plain.get(f"/channels/{code}", headers={"X-API-Key": demo.demo_api_key("agent-wang")})
    ).status_code == 403
    assert (await plain.get(f"/channels/nope-{_suffix()}", headers=ADMIN)).status_code == 404

    rotated = await plain.post(f"/channels/{code}/rotate-secret", json={"grace_seconds": 0}, headers=ADMIN)
    assert rotated.status_code == 200 and rotated.json()["secret"] != secret
    assert rotated.json()["previous_secret_until"] is None
    probe = {"message_id": "m1", "user_id": "u1"}  # no text: a 422 once the signature is taken
    assert (await inbound(plain, code, secret, probe)).status_code == 401  # no grace: the old one is dead
    assert (await inbound(plain, code, rotated.json()["secret"], probe)).status_code == 422
    graced = await plain.post(f"/channels/{code}/rotate-secret", headers=ADMIN)  # default grace: a day
    assert graced.json()["previous_secret_until"] is not None
    assert (await inbound(plain, code, rotated.json()["secret"], probe)).status_code == 422  # still verifies
    assert (await inbound(plain, code, graced.json()["secret"], probe)).status_code == 422

    async with db.session() as s:
        entries = (await s.exec(select(AuditLog).where(AuditLog.target_id == code).order_by(AuditLog.id))).all()
    assert [e.action for e in entries] == [
        "channel.create",
        "channel.update",
        "channel.rotate_secret",
        "channel.rotate_secret",
    ]
    logged = json.dumps([[e.before, e.after] for e in entries], default=str)
    for s_ in (secret, rotated.json()["secret"], graced.json()["secret"]):
        assert s_ not in logged


async def test_a_regional_admin_cannot_register_a_channel_acting_everywhere(plain: httpx.AsyncClient):
    suffix = _suffix()
    admin_east = {"id": f"admin-east-{suffix}", "name": "East admin", "roles": ["admin"], "regions": ["east"]}
    assert (await plain.post("/people", json=admin_east, headers=ADMIN)).status_code == 201
    key = await plain.post(f"/people/{admin_east['id']}/api-keys", json={}, headers=ADMIN)
    headers = {"X-API-Key": key.json()["api_key"]}
    body = {"kind": "wechat", "actor_id": GATEWAY, "default_region": "east"}  # gateway-qr acts in every region
    r = await plain.put(f"/channels/wx-{suffix}", json=body, headers=headers)
    assert r.status_code == 403
    south = f"wx-s-{suffix}"
    await register(plain, south, "wechat", default_region="south")
    assert (await plain.get(f"/channels/{south}", headers=headers)).status_code == 404
    assert (await plain.post(f"/channels/{south}/rotate-secret", headers=headers)).status_code == 404


# --- what a message does ---


async def test_a_known_customer_scanning_a_qr_code_gets_a_ticket_on_that_machine_once(stack, db: Database):
    code = f"qr-{_suffix()}"
    secret = await register(stack.http, code, "qr_form", default_ticket_type="equipment_repair")
    phone = _phone()
    customer = await add_customer(db, phone=phone)
    asset, qr = await add_asset(db, customer)
    submission = {
        "submission_id": f"sub-{_suffix()}",
        "qr_code": qr,
        "phone": phone,
        "fault": "overheating",
        "text": "Compressor is very hot\nsince this morning",
    }
    r = await inbound(stack.http, code, secret, submission)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outcome"] == "created" and out["duplicate"] is False
    t = (await stack.get(out["ticket_id"], "admin")).json()
    assert (t["customer_id"], t["asset_id"], t["channel"], t["ticket_type"]) == (
        customer,
        asset,
        "qr",
        "equipment_repair",
    )
    assert t["title"] == "Compressor is very hot" and t["created_by"] == GATEWAY
    assert t["fields"]["fault"] == "overheating" and t["fields"]["device_id"].startswith("TF-")  # from the asset

    for _ in range(2):  # the same submission again: its first outcome, nothing done twice
        again = await inbound(stack.http, code, secret, submission)
        assert again.status_code == 200
        assert again.json() == {**out, "duplicate": True}
    async with db.session() as s:
        tickets = (await s.exec(select(Ticket.id).where(Ticket.customer_id == customer))).all()
    assert tickets == [out["ticket_id"]]
    assert [(d.outcome, d.ticket_id) for d in await deliveries(db, code)] == [("created", out["ticket_id"])]


async def test_a_crash_between_the_ticket_and_the_delivery_record_converges(stack, db: Database):
    """The plan is recorded before the ticket is touched; a repeat after a crash carries it out
    again under the same idempotency key: one ticket."""
    code = f"qr-{_suffix()}"
    secret = await register(stack.http, code, "qr_form", default_ticket_type="equipment_repair")
    phone = _phone()
    customer = await add_customer(db, phone=phone)
    _, qr = await add_asset(db, customer)
    submission = {"submission_id": f"sub-{_suffix()}", "qr_code": qr, "phone": phone, "fault": "noise"}
    first = (await inbound(stack.http, code, secret, submission)).json()
    async with db.session() as s:  # as if the process died after creating the ticket
        row = (await s.exec(select(ChannelDelivery).where(ChannelDelivery.channel == code))).one()
        row.completed_at, row.ticket_id = None, None
        s.add(row)
        await s.commit()
    r = await inbound(stack.http, code, secret, submission)
    assert r.status_code == 200 and r.json()["ticket_id"] == first["ticket_id"] and r.json()["duplicate"] is False
    async with db.session() as s:
        assert len((await s.exec(select(Ticket.id).where(Ticket.customer_id == customer))).all()) == 1
    assert (await inbound(stack.http, code, secret, submission)).json()["duplicate"] is True

    # the same new delivery three times at once: one plan, one ticket, the same answer
    at_once = {**submission, "submission_id": f"sub-{_suffix()}", "fault": "leak"}
    answers = await asyncio.gather(*(inbound(stack.http, code, secret, at_once) for _ in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert len({a.json()["ticket_id"] for a in answers}) == 1
    async with db.session() as s:
        assert len((await s.exec(select(Ticket.id).where(Ticket.customer_id == customer))).all()) == 2
    assert len(await deliveries(db, code)) == 2


async def test_an_unknown_wechat_sender_becomes_a_customer_with_a_ticket(stack, db: Database):
    code = f"wx-{_suffix()}"
    secret = await register(stack.http, code, "wechat", default_ticket_type="general")
    openid = f"o{_suffix()}{_suffix()}"
    r = await inbound(stack.http, code, secret, wechat_text(openid, "水龙头漏水了"))
    assert r.status_code == 200, r.text
    [customer] = await customers_of(db, "wechat_openid", openid)
    async with db.session() as s:
        row = await s.get(Customer, customer)
        identity = (await s.exec(select(CustomerIdentity).where(CustomerIdentity.customer_id == customer))).one()
        audited = (await s.exec(select(AuditLog.action).where(AuditLog.target_id == customer))).all()
    assert row is not None and row.region == "east" and row.name.startswith("WeChat user")
    assert identity.verified is True  # WeChat vouches for the openid
    assert audited == ["customer.create"]
    t = (await stack.get(r.json()["ticket_id"], "admin")).json()
    assert (t["customer_id"], t["channel"], t["region"], t["title"]) == (customer, "bot", "east", "水龙头漏水了")
    # the same person again: no second customer record
    assert (await inbound(stack.http, code, secret, wechat_text(openid, "还有一个问题"))).status_code == 200
    assert await customers_of(db, "wechat_openid", openid) == [customer]


async def test_an_answer_reaches_the_request_info_and_a_photo_is_added(stack, db: Database):
    code = f"wx-{_suffix()}"
    secret = await register(stack.http, code, "wechat", default_ticket_type="general")
    openid = f"o{_suffix()}{_suffix()}"
    customer = await add_customer(db, openid=openid)
    created = (await inbound(stack.http, code, secret, wechat_text(openid, "The light flickers"))).json()
    tid = created["ticket_id"]
    await snapshot_until(db, tid, lambda s: "work" in s.active)
    assert (await stack.act(tid, "claim", actor="eng-li")).status_code == 200
    r = await stack.act(tid, "request_info", actor="eng-li", question="Which room?")
    assert r.status_code == 200, r.text
    await snapshot_until(db, tid, lambda s: s.nodes["work"].awaiting_info is not None)

    answer = await inbound(stack.http, code, secret, wechat_text(openid, "The kitchen"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "outcome": "replied",
        "ticket_id": tid,
        "delivery_id": answer.json()["delivery_id"],
        "duplicate": False,
        "intent": None,
    }
    t = await stack.until(tid, lambda t: t["nodes"]["work"]["awaiting_info"] is None)
    assert t["nodes"]["work"]["awaiting_info"] is None  # the SLA clocks run again
    photo = await inbound(stack.http, code, secret, wechat_image(openid, "https://img.example.test/kitchen.jpg"))
    assert photo.status_code == 200 and photo.json()["outcome"] == "photo_added" and photo.json()["ticket_id"] == tid
    events = await ticket_events(stack.http, tid)
    assert [(e["action"], e["actor_id"], e["data"]["text"]) for e in events] == [
        ("event:customer_reply", GATEWAY, "The kitchen"),
        ("event:customer_photo", GATEWAY, "https://img.example.test/kitchen.jpg"),
    ]
    async with db.session() as s:
        assert (await s.get(Ticket, tid)).customer_id == customer  # type: ignore[union-attr]


def _confirm_template(key: str, rejection: bool) -> dict[str, Any]:
    events = [{"name": "customer_confirmed", "senders": ["channel"], "fields": ["satisfaction"]}]
    if rejection:
        events.append({"name": "customer_rejected", "senders": ["channel"]})
    return {
        "key": key,
        "name": f"Confirm {key}",
        "fields": [{"name": "satisfaction", "type": "number", "min": 1, "max": 5, "editable_by": ["channel"]}],
        "start": "confirm",
        "nodes": [
            {
                "id": "confirm",
                "type": "wait",
                "name": "Customer confirms",
                "signal": "customer_confirmed",
                "duration": "P2D",
                "next": "done",
            },
            {"id": "done", "type": "end"},
        ],
        "events": events,
    }


async def _channel_with_template(stack, kind: str, rejection: bool) -> tuple[str, str]:
    key = f"confirm_{_suffix()}"
    r = await stack.http.post(
        "/templates", json=_confirm_template(key, rejection), headers=stack.as_actor("tmpl-admin")
    )
    assert r.status_code == 201, r.text
    code = f"{kind[:3]}-{_suffix()}"
    return code, await register(stack.http, code, kind, default_ticket_type=key)


async def test_confirmation_and_rejection_reach_the_waiting_ticket(stack, db: Database):
    code, secret = await _channel_with_template(stack, "wechat", rejection=True)
    openid = f"o{_suffix()}{_suffix()}"
    await add_customer(db, openid=openid)
    tid = (await inbound(stack.http, code, secret, wechat_text(openid, "Please check the pump"))).json()["ticket_id"]
    await snapshot_until(db, tid, lambda s: "confirm" in s.active)

    rejected = await inbound(stack.http, code, secret, wechat_text(openid, "不满意，还在响"))
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["outcome"], rejected.json()["ticket_id"]) == ("rejected", tid)
    confirmed = await inbound(stack.http, code, secret, wechat_text(openid, "确认"))
    assert (confirmed.json()["outcome"], confirmed.json()["ticket_id"]) == ("confirmed", tid)
    t = await stack.until(tid, lambda t: t["status"] in ("resolved", "closed"))
    assert t["status"] in ("resolved", "closed") and "confirm" not in t["active"]
    assert [e["action"] for e in await ticket_events(stack.http, tid)] == [
        "event:customer_rejected",
        "event:customer_confirmed",
    ]


async def test_app_confirmation_with_a_rating_and_a_rejection_the_template_does_not_take(stack, db: Database):
    code, secret = await _channel_with_template(stack, "app", rejection=False)
    user = f"user-{_suffix()}"
    first = await inbound(stack.http, code, secret, {"message_id": f"m-{_suffix()}", "user_id": user, "text": "Broken"})
    assert first.status_code == 200, first.text
    tid = first.json()["ticket_id"]
    await snapshot_until(db, tid, lambda s: "confirm" in s.active)
    no = await inbound(stack.http, code, secret, {"message_id": f"m-{_suffix()}", "user_id": user, "intent": "reject"})
    assert no.status_code == 200
    assert (no.json()["outcome"], no.json()["intent"], no.json()["ticket_id"]) == ("replied", "reject", tid)
    yes = {"message_id": f"m-{_suffix()}", "user_id": user, "intent": "confirm", "rating": 4}
    r = await inbound(stack.http, code, secret, yes)
    assert r.status_code == 200 and r.json()["outcome"] == "confirmed"
    t = await stack.until(tid, lambda t: "confirm" not in t["active"])
    assert t["fields"]["satisfaction"] in ("4", 4)
    async with db.session() as s:
        assert (await s.get(Ticket, tid)).satisfaction == 4  # type: ignore[union-attr]
    # nothing waits on them any more: a confirmation is a 409, and nothing is recorded
    late = await inbound(stack.http, code, secret, {**yes, "message_id": f"m-{_suffix()}"})
    assert late.status_code == 409, late.text
    assert len(await deliveries(db, code)) == 3


async def test_a_customer_of_another_region_gets_the_ticket_in_their_region_or_is_refused(stack, db: Database):
    """The ticket goes to the asset's (else the customer's) region, not the channel's default;
    a channel whose account does not serve that region is refused (403) and records nothing."""
    phone, openid = _phone(), f"o{_suffix()}{_suffix()}"
    customer = await add_customer(db, region="south", phone=phone, openid=openid)
    asset, qr = await add_asset(db, customer, region="south")
    scan = {"submission_id": f"sub-{_suffix()}", "qr_code": qr, "phone": phone, "fault": "leak"}

    east_only = f"gw-east-{_suffix()}"
    person = {"id": east_only, "name": "East gateway", "roles": ["channel"], "regions": ["east"]}
    assert (await stack.http.post("/people", json=person, headers=ADMIN)).status_code == 201
    narrow_qr, narrow_wx = f"qr-e-{_suffix()}", f"wx-e-{_suffix()}"
    qr_secret = await register(
        stack.http, narrow_qr, "qr_form", actor_id=east_only, default_ticket_type="equipment_repair"
    )
    wx_secret = await register(stack.http, narrow_wx, "wechat", actor_id=east_only, default_ticket_type="general")
    before = await table_counts(db)
    r = await inbound(stack.http, narrow_qr, qr_secret, scan)
    assert r.status_code == 403, r.text
    r = await inbound(stack.http, narrow_wx, wx_secret, wechat_text(openid, "Help"))
    assert r.status_code == 403, r.text
    assert await table_counts(db) == before  # no customer, no delivery, no ticket

    code = f"qr-{_suffix()}"
    secret = await register(stack.http, code, "qr_form", default_ticket_type="equipment_repair")  # default east
    r = await inbound(stack.http, code, secret, scan)
    assert r.status_code == 200, r.text
    t = (await stack.get(r.json()["ticket_id"], "admin")).json()
    assert (t["region"], t["customer_id"], t["asset_id"]) == ("south", customer, asset)
    assert (await stack.get(t["ticket_id"], "agent-wang")).status_code == 404  # east staff do not see it
    assert (await stack.get(t["ticket_id"], "agent-chen")).status_code == 200  # south staff do


async def test_an_unknown_phone_scanning_a_machine_reports_for_its_owner(stack, db: Database):
    """A phone typed into the QR form proves nothing: the ticket is the asset owner's, the phone
    is its reporter and contact, and no customer record is made for it."""
    code = f"qr-{_suffix()}"
    secret = await register(stack.http, code, "qr_form", default_ticket_type="equipment_repair")
    owner = await add_customer(db, phone=_phone())
    asset, qr = await add_asset(db, owner)
    stranger = _phone()
    scan = {"submission_id": f"sub-{_suffix()}", "qr_code": qr, "phone": stranger, "fault": "no_power"}
    r = await inbound(stack.http, code, secret, scan)
    assert r.status_code == 200, r.text
    t = (await stack.get(r.json()["ticket_id"], "admin")).json()
    assert (t["customer_id"], t["asset_id"], t["reporter"]) == (owner, asset, stranger)
    assert t["fields"]["contact_phone"] == stranger and t["title"] == "Fault reported: no_power"
    assert await customers_of(db, "phone", normalize("phone", stranger)) == []


async def test_the_app_names_the_users_own_machine_by_serial_and_no_one_elses(stack, db: Database):
    """Intake takes a machine from a customer channel by its QR code only (a serial can be read off
    any plate). The app's ``serial`` names one of the signed-in user's own machines (their record
    or one merged into it) and goes on as that machine's QR code; anyone else's serial, an unknown
    one, or a serial from a user nobody knows is one 422 on ``serial``, and nothing is written."""
    code = f"app-{_suffix()}"
    secret = await register(stack.http, code, "app", default_ticket_type="equipment_repair")
    user = f"user-{_suffix()}"
    owner = await add_customer(db)
    async with db.session() as s:
        s.add(
            CustomerIdentity(
                customer_id=owner, kind="app_user", value=normalize("app_user", user), created_at=datetime.now(UTC)
            )
        )
        await s.commit()
    mine, _ = await add_asset(db, owner)
    theirs, _ = await add_asset(db, await add_customer(db))
    async with db.session() as s:
        serial_of = {a: (await s.get(Asset, a)).serial for a in (mine, theirs)}  # type: ignore[union-attr]

    def report(serial: str, sender: str = user) -> dict[str, Any]:
        return {"message_id": f"m-{_suffix()}", "user_id": sender, "serial": serial, "fault": "noise", "text": "Loud"}

    before = await table_counts(db)
    refused = [
        await inbound(stack.http, code, secret, report(serial_of[theirs])),  # someone else's machine
        await inbound(stack.http, code, secret, report("TF-NO-SUCH-1")),
        await inbound(stack.http, code, secret, report(serial_of[mine], sender=f"user-{_suffix()}")),  # a stranger
    ]
    for r in refused:
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == refused[0].json()["detail"]  # one answer: never whose it is
        assert r.json()["detail"][0]["loc"] == ["body", "serial"] and r.json()["detail"][0]["type"] == "unknown_asset"
    assert await table_counts(db) == before  # no delivery, no customer, no ticket

    r = await inbound(stack.http, code, secret, report(serial_of[mine]))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "created"
    t = (await stack.get(r.json()["ticket_id"], "admin")).json()
    assert (t["customer_id"], t["asset_id"], t["channel"]) == (owner, mine, "app")
    assert t["fields"]["device_id"] == serial_of[mine] and t["fields"]["fault"] == "noise"
