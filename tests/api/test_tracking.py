"""Tracking links and the customer's page ``/t/<token>``, over HTTP against the real app, dev
server, worker and database: who issues links, what the page shows (and never shows), what the
customer does through it, the attachment limits, and every way a token is refused.

The tickets run a small template of this test's own: a task for eng-li (who may ask the customer
a question), then a wait for ``customer_confirmed`` that may carry a rating.
"""

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from api import storage
from models.db import Database
from models.settings import Settings
from models.tables import AuditLog, Ticket, TicketEventRow
from models.tracking_tables import TrackingToken

# The smallest images of each kind (their signatures are what counts).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cf"
    "c0f01f0005000201a5f0b2f90000000049454e44ae426082"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
SECRET_NOTE = "INTERNAL-NOTE-do-not-show"
HIDDEN_COST = 987654


def suffix() -> str:
    return uuid.uuid4().hex[:8]


def template(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": f"Tracking {key}",
        "fields": [
            {"name": "device_id", "label": "Device", "type": "text"},
            {"name": "internal_cost", "label": "Internal cost", "type": "number", "visible_to": ["finance"]},
            {"name": "contact_phone", "label": "Phone", "type": "phone"},
            {"name": "satisfaction", "type": "number", "min": 1, "max": 5, "editable_by": ["channel"]},
        ],
        "start": "work",
        "nodes": [
            {"id": "work", "type": "task", "name": "Fix it", "assignee": {"user": "eng-li"}, "next": "confirm"},
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
        "events": [{"name": "customer_confirmed", "senders": ["channel"], "fields": ["satisfaction"]}],
    }


async def new_template(http: httpx.AsyncClient, headers) -> str:
    key = f"track_{suffix()}"
    r = await http.post("/templates", json=template(key), headers=headers("tmpl-admin"))
    assert r.status_code == 201, r.text
    return key


async def new_ticket(stack, ticket_type: str, actor: str = "agent-wang", **extra) -> str:
    fields = {"device_id": "PUMP-7", "internal_cost": HIDDEN_COST, "contact_phone": "+86 139 1234 5678"}
    r = await stack.create(actor, ticket_type=ticket_type, title="Pump in hall 2 leaks", fields=fields, **extra)
    assert r.status_code == 201, r.text
    tid = r.json()["ticket_id"]
    await stack.until(tid, lambda t: (t["nodes"].get("work") or {}).get("assignee") == "eng-li")
    return tid


async def issue(http: httpx.AsyncClient, tid: str, headers: dict[str, str], **body) -> httpx.Response:
    return await http.post(f"/tickets/{tid}/tracking-links", json=body or None, headers=headers)


def token_of(url: str) -> str:
    m = re.search(r"/t/([A-Za-z0-9_-]+)$", url)
    assert m, url
    return m.group(1)


def nonce_of(html: str) -> str:
    m = re.search(r'name="nonce" value="([^"]+)"', html)
    assert m, "no form on the page"
    return m.group(1)


async def events(db: Database, tid: str, action: str) -> list[TicketEventRow]:
    async with db.session() as s:
        q = select(TicketEventRow).where(TicketEventRow.ticket_id == tid, TicketEventRow.action == action)
        return list((await s.exec(q.order_by(col(TicketEventRow.seq)))).all())


@pytest.fixture
def attachments(stack, tmp_path):
    """Attachments of this test in a directory of its own, with a small limit (the app's
    settings; its storage is made on first use)."""
    stack.settings.attachments_dir = str(tmp_path / "attachments")
    stack.settings.attachment_max_bytes = 50_000
    return tmp_path / "attachments"


async def page(http: httpx.AsyncClient, token: str, **params) -> httpx.Response:
    return await http.get(f"/t/{token}", params=params)


async def post(http: httpx.AsyncClient, token: str, what: str, data: dict[str, str], files=None) -> httpx.Response:
    return await http.post(f"/t/{token}/{what}", data=data, files=files)


# --- links ---


async def test_staff_issue_list_and_revoke_links_in_their_regions_only(stack, db: Database):
    key = await new_template(stack.http, stack.as_actor)
    tid = await new_ticket(stack, key)
    wang = stack.as_actor("agent-wang")

    r = await issue(stack.http, tid, wang)
    assert r.status_code == 201, r.text
    link = r.json()
    token = token_of(link["url"])
    assert link["url"] == f"http://ticketflow.test/t/{token}" and len(token) == 43
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    short = (await issue(stack.http, tid, wang, ttl_days=2)).json()
    assert datetime.fromisoformat(short["expires_at"]) - datetime.now(UTC) <= timedelta(days=2)

    # the token is stored as its hash only, and never listed again
    async with db.session() as s:
        row = await s.get(TrackingToken, link["id"])
        assert row is not None and row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert (await s.exec(select(TrackingToken).where(TrackingToken.token_hash == token))).first() is None
    listed = await stack.http.get(f"/tickets/{tid}/tracking-links", headers=stack.as_actor("eng-li"))
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [short["id"], link["id"]]
    assert token not in listed.text and "url" not in listed.json()["items"][0]

    # out of region, a channel account that did not raise it, no key: nothing to see
    for who in ("agent-chen", "gateway-qr"):
        assert (await issue(stack.http, tid, stack.as_actor(who))).status_code == 404
        assert (await stack.http.get(f"/tickets/{tid}/tracking-links", headers=stack.as_actor(who))).status_code == 404
        r = await stack.http.delete(f"/tickets/{tid}/tracking-links/{link['id']}", headers=stack.as_actor(who))
        assert r.status_code == 404
    assert (await issue(stack.http, tid, {})).status_code == 401
    assert (await issue(stack.http, "T-nope", wang)).status_code == 404
    for bad in ({"ttl_days": 0}, {"ttl_days": 367}, {"ttl_days": "soon"}, {"token": "mine"}):
        r = await issue(stack.http, tid, wang, **bad)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"][0]["loc"][0] == "body"

    assert (await page(stack.http, token)).status_code == 200
    r = await stack.http.delete(f"/tickets/{tid}/tracking-links/{link['id']}", headers=wang)
    assert r.status_code == 200 and r.json()["revoked_at"] and r.json()["active"] is False
    again = await stack.http.delete(f"/tickets/{tid}/tracking-links/{link['id']}", headers=stack.as_actor("sup-zhou"))
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    assert (await page(stack.http, token)).status_code == 404
    assert (await page(stack.http, token_of(short["url"]))).status_code == 200  # the other link still works
    r = await stack.http.delete(f"/tickets/{tid}/tracking-links/trk_nope", headers=wang)
    assert r.status_code == 404

    async with db.session() as s:
        q = select(AuditLog).where(AuditLog.target_id == tid, col(AuditLog.action).like("tracking_link.%"))
        audit = [(a.action, a.actor_id) for a in (await s.exec(q.order_by(col(AuditLog.id)))).all()]
    assert audit == [
        ("tracking_link.issue", "agent-wang"),
        ("tracking_link.issue", "agent-wang"),
        ("tracking_link.revoke", "agent-wang"),
    ]
    assert all(token not in str(a) for a in audit)


async def test_the_channel_account_that_raised_a_ticket_issues_its_links(stack):
    key = await new_template(stack.http, stack.as_actor)
    tid = await new_ticket(stack, key, actor="gateway-qr", channel="qr", region="east")
    r = await issue(stack.http, tid, stack.as_actor("gateway-qr"))
    assert r.status_code == 201, r.text
    assert (await issue(stack.http, tid, stack.as_actor("gateway-erp"))).status_code == 404


async def test_link_for_issues_a_working_link_for_other_services(stack, db: Database):
    from api.services.tracking import link_for

    key = await new_template(stack.http, stack.as_actor)
    tid = await new_ticket(stack, key)
    async with db.session() as s:
        url = await link_for(s, tid, base_url="https://service.example.com/", created_by="notify")
    assert url.startswith("https://service.example.com/t/")
    assert (await page(stack.http, token_of(url))).status_code == 200


# --- the page ---


async def test_the_page_tells_the_customer_story_and_nothing_internal(stack, db: Database):
    key = await new_template(stack.http, stack.as_actor)
    tid = await new_ticket(stack, key)
    assert (await stack.act(tid, "comment", actor="eng-li", text=SECRET_NOTE)).status_code == 200
    token = token_of((await issue(stack.http, tid, stack.as_actor("agent-wang"))).json()["url"])

    r = await page(stack.http, token)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "Pump in hall 2 leaks" in html and tid in html
    assert "Someone is on it" in html or "Work is in progress" in html
    assert "Li Wei (engineer, east) is handling your request" in html
    assert "Request received" in html and "PUMP-7" in html
    for secret in (SECRET_NOTE, str(HIDDEN_COST), "Internal cost", "139 1234", "eng-li", "agent-wang", "candidates"):
        assert secret not in html, secret
    assert 'id="confirm-form"' not in html and 'id="reply-form"' not in html  # nothing to confirm or answer yet
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"

    zh = await page(stack.http, token, lang="zh")
    assert "正在处理您的请求" in zh.text and 'lang="zh-CN"' in zh.text
    by_browser = await stack.http.get(f"/t/{token}", headers={"Accept-Language": "fr;q=1, zh-CN;q=0.8, en;q=0.5"})
    assert "处理进度" in by_browser.text
    assert "What has happened" in (await page(stack.http, token, lang="xx")).text

    # the assets it loads are served, and nothing else from that folder
    assert (await stack.http.get("/tracking/tracking.js")).status_code == 200
    assert (await stack.http.get("/tracking/tracking.css")).status_code == 200
    assert (await stack.http.get("/tracking/..%2f..%2fapp.py")).status_code == 404


async def test_the_customer_answers_a_question_then_confirms_with_a_rating(stack, db: Database):
    key = await new_template(stack.http, stack.as_actor)
    tid = await new_ticket(stack, key)
    token = token_of((await issue(stack.http, tid, stack.as_actor("agent-wang"))).json()["url"])
    nonce = nonce_of((await page(stack.http, token)).text)

    # nothing asked yet: an answer is refused, and nothing reaches the ticket
    r = await post(stack.http, token, "reply", {"nonce": nonce, "text": "hello"})
    assert r.status_code == 409 and "No question is waiting" in r.text
    r = await stack.act(tid, "request_info", actor="eng-li", question="Which valve is leaking <b>exactly</b>?")
    assert r.status_code == 200, r.text
    await stack.until(tid, lambda t: t["nodes"]["work"]["awaiting_info"])
    html = (await page(stack.http, token)).text
    assert "Which valve is leaking &lt;b&gt;exactly&lt;/b&gt;?" in html  # shown as text
    assert "We need a little more information from you" in html

    for bad in (
        {"text": "the left one"},
        {"nonce": "k1.1.x.y", "text": "the left one"},
        {"nonce": nonce + "0", "text": "x"},
        {"nonce": "k1.².x.y", "text": "x"},  # a superscript digit: refused, not a 500
    ):
        r = await post(stack.http, token, "reply", bad)
        assert r.status_code == 403 and "expired" in r.text, bad
    nonce = nonce_of(html)
    r = await post(stack.http, token, "reply", {"nonce": nonce, "text": "The left one, near the pump"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/t/{token}?done=replied"
    # the same form again (a double tap) is the same answer, not a second one
    assert (
        await post(stack.http, token, "reply", {"nonce": nonce, "text": "The left one, near the pump"})
    ).status_code in (303, 409)
    replies = await events(db, tid, "event:customer_reply")
    assert [(e.actor_id, e.data["text"]) for e in replies] == [("tracking", "The left one, near the pump")]
    assert "Thank you: your answer was sent." in (await page(stack.http, token, done="replied")).text
    r = await post(stack.http, token, "reply", {"nonce": nonce, "text": "x" * 5001})
    assert r.status_code in (409, 422)

    # no confirmation before the work is done
    r = await post(stack.http, token, "confirm", {"nonce": nonce})
    assert r.status_code == 409 and "nothing to confirm" in r.text
    assert (await stack.act(tid, "start", actor="eng-li")).status_code == 200
    assert (await stack.act(tid, "complete", actor="eng-li")).status_code == 200
    await stack.until(tid, lambda t: "confirm" in t["active"])
    html = (await page(stack.http, token, lang="zh")).text
    assert "工作已完成，请您确认" in html and 'id="confirm-form"' in html
    nonce = nonce_of(html)
    r = await post(stack.http, token, "confirm", {"nonce": nonce, "rating": "9", "lang": "zh"})
    assert r.status_code == 422
    r = await post(stack.http, token, "confirm", {"nonce": nonce, "rating": "5", "lang": "zh"})
    assert r.status_code == 303 and r.headers["location"] == f"/t/{token}?lang=zh&done=confirmed"
    t = await stack.until(tid, lambda t: t["status"] == "resolved", actor="admin")
    assert t["status"] == "resolved" and t["fields"]["satisfaction"] in (5, "5")
    confirmed = await events(db, tid, "event:customer_confirmed")
    assert [e.actor_id for e in confirmed] == ["tracking"]
    async with db.session() as s:
        assert (await s.get(Ticket, tid)).satisfaction == 5  # type: ignore[union-attr]
    html = (await page(stack.http, token)).text
    assert "You confirmed the work" in html and "Resolved" in html and 'id="confirm-form"' not in html
    r = await post(stack.http, token, "confirm", {"nonce": nonce_of(html)})
    assert r.status_code == 409


# --- attachments ---


async def test_photos_and_signatures_are_checked_stored_and_served_to_this_ticket_only(
    stack, db: Database, attachments
):
    key = await new_template(stack.http, stack.as_actor)
    tid, other = await new_ticket(stack, key), await new_ticket(stack, key)
    token = token_of((await issue(stack.http, tid, stack.as_actor("agent-wang"))).json()["url"])
    other_token = token_of((await issue(stack.http, other, stack.as_actor("agent-wang"))).json()["url"])
    nonce = nonce_of((await page(stack.http, token)).text)

    refused = [
        (GIF, "image/gif", 415),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png", 415),  # a PNG by name only
        (JPEG, "image/png", 415),  # a JPEG that says it is a PNG
        (b"", "image/png", 415),
        (PNG + b"\x00" * 50_000, "image/png", 413),  # over this test's 50,000 bytes
    ]
    for data, media, code in refused:
        r = await post(stack.http, token, "photo", {"nonce": nonce}, {"photo": ("../../etc/passwd.png", data, media)})
        assert r.status_code == code, (media, r.status_code, r.text[:200])
    r = await post(stack.http, token, "photo", {"nonce": nonce})
    assert r.status_code == 415
    assert await events(db, tid, "event:customer_photo") == []
    assert not attachments.exists() or not any(p.is_file() for p in attachments.rglob("*"))

    for data, media in ((PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp")):
        r = await post(stack.http, token, "photo", {"nonce": nonce}, {"photo": ("x.exe", data, media)})
        assert r.status_code == 303, r.text
    photos = await events(db, tid, "event:customer_photo")
    assert [e.actor_id for e in photos] == ["tracking"] * 3
    names = [
        re.fullmatch(rf"http://ticketflow\.test/tickets/{tid}/attachments/(\S+)", e.data["text"]).group(1)
        for e in photos
    ]  # type: ignore[union-attr]
    assert [n.rsplit(".", 1)[1] for n in names] == ["png", "jpg", "webp"]
    assert sorted(p.name for p in (attachments / "tickets" / tid).iterdir()) == sorted(names)

    served = await stack.http.get(f"/t/{token}/files/{names[0]}")
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png" and served.headers["cache-control"] == "private, no-store"
    assert "sandbox" in served.headers["content-security-policy"]
    assert f'src="/t/{token}/files/{names[1]}"' in (await page(stack.http, token)).text  # on the timeline
    staff = await stack.http.get(f"/tickets/{tid}/attachments/{names[0]}", headers=stack.as_actor("agent-wang"))
    assert staff.status_code == 200 and staff.content == PNG
    for where, headers in (
        (f"/t/{other_token}/files/{names[0]}", {}),  # another ticket's token
        (f"/tickets/{tid}/attachments/{names[0]}", stack.as_actor("agent-chen")),  # out of region
        (f"/tickets/{other}/attachments/{names[0]}", stack.as_actor("agent-wang")),  # not that ticket's file
        (f"/t/{token}/files/..%2F..%2F{other}%2F{names[0]}", {}),
        (f"/t/{token}/files/{names[0]}.png", {}),
    ):
        r = await stack.http.get(where, headers=headers)
        assert r.status_code == 404, where
        assert PNG not in r.content

    # the signature: a PNG drawn on the page, kept like a photo and marked as a signature
    r = await post(stack.http, token, "signature", {"nonce": nonce}, {"signature": ("s.png", JPEG, "image/jpeg")})
    assert r.status_code == 422
    sig = PNG[:-12] + b"\x00\x00\x00\x00IEND\xaeB`\x82"  # another PNG (other bytes)
    r = await post(stack.http, token, "signature", {"nonce": nonce}, {"signature": ("s.png", sig, "image/png")})
    assert r.status_code == 303 and r.headers["location"].endswith("done=signature")
    (last,) = await events(db, tid, "event:customer_signature")
    assert "/attachments/" in last.data["text"]
    assert "You signed" in (await page(stack.http, token)).text

    # a closed ticket takes no more files
    assert (await stack.act(tid, "cancel", actor="agent-wang", reason="customer withdrew")).status_code == 200
    await stack.until(tid, lambda t: t["status"] == "cancelled")
    r = await post(stack.http, token, "photo", {"nonce": nonce}, {"photo": ("p.png", PNG, "image/png")})
    assert r.status_code == 409
    assert len(await events(db, tid, "event:customer_photo")) == 3


# --- refusals ---


async def test_unknown_expired_and_revoked_tokens_are_the_same_404(stack, db: Database):
    key = await new_template(stack.http, stack.as_actor)
    tid = await new_ticket(stack, key)
    wang = stack.as_actor("agent-wang")
    live, expired, revoked = [(await issue(stack.http, tid, wang)).json() for _ in range(3)]
    nonce = nonce_of((await page(stack.http, token_of(expired["url"]))).text)
    async with db.session() as s:
        row = await s.get(TrackingToken, expired["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(row)
        await s.commit()
    assert (await stack.http.delete(f"/tickets/{tid}/tracking-links/{revoked['id']}", headers=wang)).status_code == 200

    gone = await page(stack.http, "x" * 43)
    assert gone.status_code == 404 and "This link is not valid" in gone.text
    assert gone.headers["cache-control"] == "no-store"
    for token in (token_of(expired["url"]), token_of(revoked["url"]), "x" * 500, token_of(live["url"])[:-1]):
        r = await page(stack.http, token)
        assert (r.status_code, r.text) == (404, gone.text), token
        for what in ("reply", "confirm", "photo", "signature", "survey"):
            r = await post(stack.http, token, what, {"nonce": nonce, "text": "hi"})
            assert r.status_code in (404, 422), (what, r.status_code)
            assert tid not in r.text
    assert await events(db, tid, "event:customer_reply") == []

    # a page's nonce works for its own link only
    other_nonce = nonce_of((await page(stack.http, token_of(live["url"]))).text)
    await stack.act(tid, "request_info", actor="eng-li", question="Which floor?")
    await stack.until(tid, lambda t: t["nodes"]["work"]["awaiting_info"])
    second = (await issue(stack.http, tid, wang)).json()
    r = await post(stack.http, token_of(second["url"]), "reply", {"nonce": other_nonce, "text": "2nd"})
    assert r.status_code == 403
    assert await events(db, tid, "event:customer_reply") == []


# --- storage ---


def test_images_are_told_by_their_bytes():
    assert [storage.sniff(d) for d in (PNG, JPEG, WEBP, GIF, b"RIFF0000WAVE", b"")] == [
        "image/png",
        "image/jpeg",
        "image/webp",
        None,
        None,
        None,
    ]
    assert storage.checked(PNG, "application/octet-stream", 1000) == "image/png"
    assert storage.new_key("tickets/T1/", PNG, "image/png") == storage.new_key("tickets/T1/", PNG, "image/png")
    for bad in (
        "../x.png",
        "/abs/aaaaaaaaaaaaaaaa.png",
        "a/../bbbbbbbbbbbbbbbb.png",
        "tickets/T1/short.png",
        "x" * 20 + ".gif",
    ):
        assert not storage.valid_key(bad), bad


async def test_the_local_directory_keeps_files_whole_and_by_content(tmp_path):
    local = storage.LocalStorage(tmp_path, max_bytes=10_000)
    key = await local.put(PNG, "image/png", prefix="tickets/T1/")
    assert key.startswith("tickets/T1/") and key.endswith(".png")
    assert await local.put(PNG, "image/png", prefix="tickets/T1/") == key
    found = await local.get(key)
    assert found is not None and (found.data, found.content_type) == (PNG, "image/png")
    assert await local.get("tickets/T1/" + "a" * 43 + ".png") is None
    assert await local.get("../" + key) is None
    assert local.url(key) is None
    assert [p.name for p in (tmp_path / "tickets" / "T1").iterdir()] == [key.rsplit("/", 1)[1]]


async def test_an_s3_compatible_bucket_stores_and_serves_files(tmp_path):
    """Against moto's S3 server (a real HTTP endpoint speaking the S3 API, SigV4 signed by boto3)."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        settings = Settings(
            attachments_backend="s3",
            s3_bucket="tf-attachments",
            s3_endpoint_url=endpoint,
            s3_region="us-east-1",
            s3_access_key_id="test-access",
            s3_secret_access_key="test-secret",  # type: ignore[arg-type]
        )
        s3 = storage.from_settings(settings)
        assert isinstance(s3, storage.S3Storage)
        s3.client.create_bucket(Bucket="tf-attachments")
        key = await s3.put(JPEG, "image/jpeg", prefix="tickets/T9/")
        found = await s3.get(key)
        assert found is not None and (found.data, found.content_type) == (JPEG, "image/jpeg")
        head = s3.client.head_object(Bucket="tf-attachments", Key=key)
        assert head["ContentType"] == "image/jpeg"
        assert await s3.get("tickets/T9/" + "b" * 43 + ".jpg") is None
        url = s3.url(key)
        assert url is not None and "X-Amz-Signature=" in url
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).content == JPEG
        with pytest.raises(Exception) as refused:
            await s3.put(GIF, "image/gif")
        assert getattr(refused.value, "status_code", None) == 415
    finally:
        server.stop()
