"""/message-templates over HTTP on the real app and database: saved only when the sandbox
accepts them (422 naming the field and the line otherwise), by admin and process_admin only,
versioned and audited; the shipped defaults load once and never overwrite a person's words."""

import uuid
from collections.abc import AsyncIterator
from typing import cast

import httpx
import pytest
from sqlmodel import select
from temporalio.client import Client

from api.app import create_app
from api.services.message_templates import LOADER, load_message_templates
from models import demo
from models.db import Database
from models.settings import Settings
from models.tables import AuditLog
from store import customer_messages as store

pytestmark = pytest.mark.asyncio

NO_TEMPORAL = cast(Client, object())  # these routes never reach Temporal
GOOD = {"subject": "[{{ ticket.id }}] accepted", "body": "Hello {{ customer.name }},\n{{ engineer.name }} has it."}


def key(actor: str) -> dict[str, str]:
    return {"X-API-Key": demo.demo_api_key(actor)}


def lang() -> str:
    """A language of the test's own (zz-xxxx): the shared defaults (zh, en) stay untouched."""
    return f"zz-{uuid.uuid4().hex[:4]}"


@pytest.fixture
async def http(db: Database, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield h


async def test_save_version_and_read_back(http, db):
    language = lang()
    url = f"/message-templates/general/accepted/{language}"
    r = await http.put(url, json=GOOD, headers=key("tmpl-admin"))
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in ("ticket_type", "kind", "language", "channel", "version", "updated_by")} == {
        "ticket_type": "general",
        "kind": "accepted",
        "language": language,
        "channel": "*",
        "version": 1,
        "updated_by": "tmpl-admin",
    }
    r = await http.put(url, json=GOOD, headers=key("tmpl-admin"))  # the same words: nothing new
    assert (r.status_code, r.json()["version"]) == (200, 1)
    r = await http.put(url, json={**GOOD, "body": "Hi {{ customer.name }}"}, headers=key("admin"))
    assert (r.status_code, r.json()["version"], r.json()["updated_by"]) == (200, 2, "admin")
    r = await http.put(url, json={**GOOD, "channel": "sms", "subject": ""}, headers=key("admin"))
    assert (r.status_code, r.json()["channel"], r.json()["version"]) == (201, "sms", 1)

    r = await http.get("/message-templates", params={"language": language}, headers=key("agent-wang"))
    assert r.status_code == 200
    assert [(t["channel"], t["version"], t["body"]) for t in r.json()] == [
        ("*", 2, "Hi {{ customer.name }}"),
        ("sms", 1, GOOD["body"]),
    ]
    r = await http.get("/message-templates", params={"ticket_type": "general", "kind": "closed"}, headers=key("admin"))
    assert r.status_code == 200 and {t["kind"] for t in r.json()} <= {"closed"}

    async with db.session() as s:
        target = f"general/accepted/{language}/*"
        rows = list(await s.exec(select(AuditLog).where(AuditLog.target_id == target).order_by(AuditLog.id)))
    assert [(a.action, a.actor_id, (a.after or {}).get("version")) for a in rows] == [
        ("message_template.save", "tmpl-admin", 1),
        ("message_template.save", "admin", 2),
    ]
    assert rows[1].before == {"version": 1, "subject": GOOD["subject"], "body": GOOD["body"]}


@pytest.mark.parametrize(
    ("field", "text", "line", "words"),
    [
        ("body", "Hello\n{{ ticket.__class__ }}", 2, "no attribute '__class__'"),
        ("body", "a\nb\n{{ cycler.__init__.__globals__ }}", 3, "attribute access is allowed only on"),
        ("body", "Dear {{ customer.name }},\n\n{{ customer.phone }}", 3, "customer has no attribute 'phone'"),
        ("body", "one\ntwo\n{{ unknown_thing }}", 3, "unknown variable 'unknown_thing'"),
        ("body", "{% if eta %}\n{{ eta }\n{% endif %}", 2, "line 2"),
        ("subject", "{{ ticket.id }} {{ ticket.title.__class__ }}", 1, "attribute access is allowed only on"),
        ("body", "{{ question|truncate('x') }}", 1, "not supported"),
    ],
)
async def test_a_template_the_sandbox_refuses_is_a_422_naming_field_and_line(http, field, text, line, words):
    language = lang()
    body = {**GOOD, field: text}
    r = await http.put(f"/message-templates/general/info_needed/{language}", json=body, headers=key("tmpl-admin"))
    assert r.status_code == 422, r.text
    problem = r.json()["detail"][0]
    assert problem["loc"] == ["body", field] and problem["line"] == line, problem
    assert problem["msg"].startswith(f"line {line}: ") and words in problem["msg"], problem
    r = await http.get("/message-templates", params={"language": language}, headers=key("admin"))
    assert r.json() == []  # nothing saved


async def test_who_may_save_and_what_is_refused_at_the_edge(http):
    language = lang()
    url = f"/message-templates/general/resolved/{language}"
    assert (await http.put(url, json=GOOD)).status_code == 401
    for actor in ("agent-wang", "sup-zhou", "eng-li"):
        r = await http.put(url, json=GOOD, headers=key(actor))
        assert r.status_code == 403, (actor, r.text)
    r = await http.put(url, json=GOOD, headers=key("gateway-qr"))  # a channel account: no staff endpoints
    assert r.status_code == 403
    assert (await http.get("/message-templates", headers=key("gateway-qr"))).status_code == 403

    r = await http.put(f"/message-templates/no_such_type/resolved/{language}", json=GOOD, headers=key("admin"))
    assert r.status_code == 404 and "no_such_type" in r.json()["detail"]
    r = await http.put(f"/message-templates/*/resolved/{language}", json=GOOD, headers=key("admin"))
    assert r.status_code == 201  # "*": any ticket type
    cases = [
        (f"/message-templates/general/exploded/{language}", GOOD, ["path", "kind"]),
        ("/message-templates/general/resolved/english", GOOD, ["path", "language"]),
        ("/message-templates/General%20Type/resolved/en", GOOD, ["path", "ticket_type"]),
        (url, {**GOOD, "body": "x" * 5_001}, ["body", "body"]),
        (url, {**GOOD, "subject": "x" * 501}, ["body", "subject"]),
        (url, {**GOOD, "body": ""}, ["body", "body"]),
        (url, {**GOOD, "channel": "fax"}, ["body", "channel"]),
        (url, {**GOOD, "owner": "me"}, ["body", "owner"]),
        (url, {**GOOD, "body": "NUL \x00 here"}, ["body", "body"]),
    ]
    for path, body, loc in cases:
        r = await http.put(path, json=body, headers=key("admin"))
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"][0]["loc"] == loc, (path, r.json())
    r = await http.get("/message-templates", params={"language": "x" * 20}, headers=key("admin"))
    assert r.status_code == 422


async def test_the_defaults_load_once_and_a_person_s_words_stay(http, db):
    first = await load_message_templates(db)
    assert first and all(version >= 1 for _, version, _ in first)
    assert not any(changed for _, _, changed in await load_message_templates(db))  # a second run: nothing
    async with db.session() as s:
        shipped = await store.template(s, "general", "closed", "en", "*")
    assert shipped is not None and shipped.updated_by == LOADER
    r = await http.put(
        "/message-templates/general/closed/en", json={"subject": "Closed", "body": "Bye"}, headers=key("tmpl-admin")
    )
    assert r.status_code == 200 and r.json()["version"] == shipped.version + 1
    try:
        again = {k: (v, c) for k, v, c in await load_message_templates(db)}
        assert again["general/closed/en/*"] == (shipped.version + 1, False)  # the person's words stay
        r = await http.get(
            "/message-templates",
            params={"ticket_type": "general", "kind": "closed", "language": "en"},
            headers=key("admin"),
        )
        assert [t["body"] for t in r.json()] == ["Bye"]
    finally:  # give the other tests their default back
        async with db.session() as s:
            row = await store.template(s, "general", "closed", "en", "*")
            assert row is not None
            row.subject, row.body, row.updated_by = shipped.subject, shipped.body, LOADER
            s.add(row)
            await s.commit()
