"""Identity (issue #9, "Trust"): who calls comes only from a secret — an API key of the
``api_key`` table or an OpenID Connect token verified against a real JWKS — never from a
header that merely names someone. Each probe of the issue is a test here.

The OIDC tests run a real HTTP server in a thread serving the JWKS of RSA keys generated in
the test; tokens are signed with PyJWT (or forged by hand where PyJWT refuses to).
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import col, select
from temporalio.client import Client

import store.demo
from api.app import create_app
from models import demo
from models.db import Database
from models.settings import Settings
from models.tables import Actor
from tests.conftest import migrate

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]
NO_TEMPORAL = cast(Client, object())  # the identity routes never talk to Temporal
ADMIN = {"X-API-Key": demo.demo_api_key("admin")}
ISSUER = "https://login.example.test/realms/ticketflow"
AUDIENCE = "ticketflow-api"
ROLE = "field-tech"  # no preset resolves it: other tests never meet these people
SIGNING_KEY = "s" * 40  # production settings need an action signing key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """A JWKS endpoint on a real local HTTP server (a thread), and the keys behind it."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not published
        self.kid = f"kid-{uuid.uuid4().hex[:6]}"
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                provider.fetches += 1
                body = json.dumps(provider.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, sub: str | None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, **overrides}
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, sub: str | None, *, key: Any = None, kid: str | None = None, **overrides: Any) -> str:
        return jwt.encode(
            self.claims(sub, **overrides), key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    def forged(self, sub: str, alg: str, secret: bytes | None) -> str:
        """A token PyJWT would refuse to make: unsigned (``none``) or HMAC'd with ``secret``."""
        head = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": self.kid}).encode())
        body = _b64(json.dumps(self.claims(sub)).encode())
        signing_input = f"{head}.{body}".encode()
        sig = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest()) if secret is not None else ""
        return f"{head}.{body}.{sig}"


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


class Ident:
    def __init__(self, http: httpx.AsyncClient, db: Database, suffix: str, settings: Settings) -> None:
        self.http, self.db, self.suffix, self.settings = http, db, suffix, settings

    def pid(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    async def person(self, name: str, roles: list[str] | None = None, regions: list[str] | None = None) -> str:
        body = {"id": self.pid(name), "name": f"Test {name}", "roles": roles or [ROLE], "regions": regions or ["east"]}
        r = await self.http.post("/people", json=body, headers=ADMIN)
        assert r.status_code == 201, r.text
        return body["id"]

    async def issue(self, person_id: str, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
        return await self.http.post(f"/people/{person_id}/api-keys", json=body, headers=headers or ADMIN)

    async def key_for(self, person_id: str, **body: Any) -> tuple[str, dict[str, str]]:
        """(key id, headers) of a new key issued by the admin."""
        r = await self.issue(person_id, **body)
        assert r.status_code == 201, r.text
        return r.json()["id"], {"X-API-Key": r.json()["api_key"]}

    async def statuses(self, credentials: list[dict[str, str]], path: str = "/people") -> list[int]:
        return [(await self.http.get(path, headers=h)).status_code for h in credentials]

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def ident(db: Database, database_url: str, idp: IdentityProvider) -> AsyncIterator[Ident]:
    # HS256 and "none" are configured on purpose: they must be refused all the same.
    settings = Settings(
        database_url=database_url,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=idp.url,
        oidc_algorithms=["RS256", "HS256", "none"],
    )
    app = create_app(settings, client=NO_TEMPORAL)
    suffix = uuid.uuid4().hex[:8]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ticketflow.test") as h:
            yield Ident(h, db, suffix, settings)
    async with db.session() as s:  # leave no active test people behind for later tests' look-ups
        for row in (await s.exec(select(Actor).where(col(Actor.id).like(f"%-{suffix}")))).all():
            row.active = False
            s.add(row)
        await s.commit()


# --- header-only identity is gone ---


async def test_a_header_naming_someone_is_no_identity(ident: Ident):
    for headers in (
        {"X-Actor": "admin"},
        {"X-API-Key": "", "X-Actor": "admin"},  # an empty key never falls through to anything
        {"X-API-Key": "   ", "X-Actor": "admin"},
        {"X-API-Key": ""},
    ):
        r = await ident.http.get("/people", headers=headers)
        assert r.status_code == 401, (headers, r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate"), headers
        assert r.json()["code"] == "unauthenticated"
    r = await ident.http.post(f"/people/{ident.pid('x')}/api-keys", json={}, headers={"X-Actor": "admin"})
    assert r.status_code == 401


async def test_one_answer_for_every_bad_credential(ident: Ident):
    """Unknown, revoked and expired keys and deactivated people get the same 401: the reply
    never tells which ids or keys exist."""
    revoked = await ident.person("revoked")
    kid, revoked_key = await ident.key_for(revoked)
    assert (await ident.http.delete(f"/people/{revoked}/api-keys/{kid}", headers=ADMIN)).status_code == 204
    gone = await ident.person("gone")
    _, gone_key = await ident.key_for(gone)
    assert (await ident.http.get("/people", headers=gone_key)).status_code == 200
    assert (await ident.http.delete(f"/people/{gone}", headers=ADMIN)).status_code == 204
    expired = await ident.person("expired")
    kid, expired_key = await ident.key_for(expired)
    await _expire(ident.db, kid)

    replies = []
    for headers in (
        revoked_key,
        gone_key,
        expired_key,
        {"X-API-Key": "tf_no-such-key"},
        {"X-API-Key": demo.demo_api_key("no-such-person")},
    ):
        r = await ident.http.get("/people", headers=headers)
        assert r.status_code == 401 and r.headers.get("WWW-Authenticate"), r.text
        replies.append(r.json())
    assert all(reply == replies[0] for reply in replies), replies
    assert not any(name in json.dumps(replies) for name in (revoked, gone, expired, "no-such-person"))


async def _expire(db: Database, key_id: str) -> None:
    from models.tables import ApiKey

    async with db.session() as s:
        row = await s.get(ApiKey, key_id)
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(row)
        await s.commit()


# --- API keys: several per person, expiring, revocable, never shown twice ---


async def test_keys_are_issued_listed_rotated_and_revoked(ident: Ident):
    kay = await ident.person("kay")
    r = await ident.issue(kay, label="laptop")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["id"].startswith("key_") and first["person_id"] == kay and first["label"] == "laptop"
    assert first["api_key"] and first["api_key"] not in first["id"]
    ttl = datetime.fromisoformat(first["expires_at"]) - datetime.now(UTC)
    assert (
        timedelta(days=ident.settings.api_key_default_ttl_days - 1)
        < ttl
        <= timedelta(days=ident.settings.api_key_default_ttl_days)
    )
    me = {"X-API-Key": first["api_key"]}

    # The person rotates without locking themselves out: a second key, the first still works.
    r = await ident.issue(kay, me, label="ci", expires_in_days=7)
    assert r.status_code == 201, r.text
    second = r.json()
    ttl = datetime.fromisoformat(second["expires_at"]) - datetime.now(UTC)
    assert timedelta(days=6) < ttl <= timedelta(days=7)
    ci = {"X-API-Key": second["api_key"]}
    for headers in (me, ci):
        assert (await ident.http.get(f"/people/{kay}", headers=headers)).status_code == 200

    # Listed (to the person, an admin, hr) without the secret or its hash; the key in use is marked.
    for headers in (me, ADMIN, {"X-API-Key": demo.demo_api_key("hr-tang")}):
        r = await ident.http.get(f"/people/{kay}/api-keys", headers=headers)
        assert r.status_code == 200, r.text
        listed = {k["id"]: k for k in r.json()}
        assert set(listed) == {first["id"], second["id"]}
        assert first["api_key"] not in r.text and second["api_key"] not in r.text
        assert hashlib.sha256(first["api_key"].encode()).hexdigest() not in r.text
        assert listed[first["id"]]["label"] == "laptop" and listed[first["id"]]["revoked_at"] is None
    listed = {k["id"]: k for k in (await ident.http.get(f"/people/{kay}/api-keys", headers=me)).json()}
    assert listed[first["id"]]["current"] is True and listed[second["id"]]["current"] is False
    for who in ("agent-wang", "eng-li", "sup-zhou"):
        r = await ident.http.get(f"/people/{kay}/api-keys", headers={"X-API-Key": demo.demo_api_key(who)})
        assert r.status_code == 403, (who, r.text)

    # Only the person or an admin mints; hr may revoke.
    for who in ("hr-tang", "agent-wang", "sup-zhou"):
        r = await ident.issue(kay, {"X-API-Key": demo.demo_api_key(who)})
        assert r.status_code == 403, (who, r.text)
    # Lifetimes are bounded.
    for days in (0, -1, ident.settings.api_key_max_ttl_days + 1):
        r = await ident.issue(kay, expires_in_days=days)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "expires_in_days"], r.text
    assert (await ident.issue(kay, expires_in_days=ident.settings.api_key_max_ttl_days)).status_code == 201

    # Nobody revokes the key they are calling with (a fuzzer holding one key cannot lock itself out).
    r = await ident.http.delete(f"/people/{kay}/api-keys/{first['id']}", headers=me)
    assert r.status_code == 409, r.text
    assert (await ident.http.get(f"/people/{kay}", headers=me)).status_code == 200
    r = await ident.http.delete(f"/people/{kay}/api-keys/{second['id']}", headers=me)  # another of theirs: fine
    assert r.status_code == 204, r.text
    assert (await ident.http.get(f"/people/{kay}", headers=ci)).status_code == 401
    hr = {"X-API-Key": demo.demo_api_key("hr-tang")}
    assert (await ident.http.delete(f"/people/{kay}/api-keys/{first['id']}", headers=hr)).status_code == 204
    assert (await ident.http.get(f"/people/{kay}", headers=me)).status_code == 401
    # Unknown ids, and ids of someone else's keys, are 404.
    other = await ident.person("other")
    other_kid, _ = await ident.key_for(other)
    for kid in ("key_nope", other_kid):
        assert (await ident.http.delete(f"/people/{kay}/api-keys/{kid}", headers=ADMIN)).status_code == 404


async def test_deactivating_a_person_revokes_every_key(ident: Ident):
    leaver = await ident.person("leaver")
    keys = [(await ident.key_for(leaver))[1] for _ in range(2)]
    assert await ident.statuses(keys) == [200, 200]
    assert (await ident.http.delete(f"/people/{leaver}", headers=ADMIN)).status_code == 204
    assert await ident.statuses(keys) == [401, 401]
    listed = (await ident.http.get(f"/people/{leaver}/api-keys", headers=ADMIN)).json()
    assert len(listed) == 2 and all(k["revoked_at"] for k in listed)
    assert (await ident.issue(leaver)).status_code == 409  # no key for a deactivated person
    r = await ident.http.patch(f"/people/{leaver}", json={"active": True}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["has_api_key"] is False  # reactivated: the old keys stay dead
    assert await ident.statuses(keys) == [401, 401]


async def test_the_admin_key_cannot_revoke_itself(ident: Ident):
    """What schemathesis does with the admin's key: find it in the list, try to revoke it."""
    listed = (await ident.http.get("/people/admin/api-keys", headers=ADMIN)).json()
    current = [k for k in listed if k["current"]]
    assert len(current) == 1 and current[0]["expires_at"] is None  # demo keys never expire
    r = await ident.http.delete(f"/people/admin/api-keys/{current[0]['id']}", headers=ADMIN)
    assert r.status_code == 409, r.text
    assert (await ident.http.get("/people", headers=ADMIN)).status_code == 200


# --- OpenID Connect bearer tokens ---


async def test_a_valid_token_acts_as_the_person_of_its_subject(ident: Ident, idp: IdentityProvider):
    r = await ident.http.get("/people/eng-li", headers=ident.bearer(idp.token("eng-li")))
    assert r.status_code == 200, r.text
    # Roles and regions come from the person's record, never from the token.
    forged = ident.bearer(idp.token("eng-li", roles=["admin"], regions=["*"], groups=["admin"]))
    assert (await ident.http.get("/audit", headers=forged)).status_code == 403
    assert (await ident.http.get("/people/eng-huang", headers=forged)).status_code == 404  # south: not eng-li's
    assert (await ident.http.get("/people", headers=forged)).status_code == 200


async def test_bad_tokens_are_refused(ident: Ident, idp: IdentityProvider):
    leaver = await ident.person("oidc-leaver")
    assert (await ident.http.get("/people", headers=ident.bearer(idp.token(leaver)))).status_code == 200
    assert (await ident.http.delete(f"/people/{leaver}", headers=ADMIN)).status_code == 204
    now = int(time.time())
    cases = {
        "expired": idp.token("eng-li", iat=now - 3600, exp=now - 600),
        "no expiry": jwt.encode(
            {k: v for k, v in idp.claims("eng-li").items() if k != "exp"},
            idp.key,
            algorithm="RS256",
            headers={"kid": idp.kid},
        ),
        "wrong issuer": idp.token("eng-li", iss="https://evil.example.test"),
        "no issuer": jwt.encode(
            {k: v for k, v in idp.claims("eng-li").items() if k != "iss"},
            idp.key,
            algorithm="RS256",
            headers={"kid": idp.kid},
        ),
        "wrong audience": idp.token("eng-li", aud="someone-else"),
        "alg none": idp.forged("eng-li", "none", None),
        "HS256 keyed with the public key": idp.forged("eng-li", "HS256", idp.public_pem()),
        "unknown kid": idp.token("eng-li", key=idp.stranger, kid="kid-unknown"),
        "known kid, another key": idp.token("eng-li", key=idp.stranger),
        "unknown subject": idp.token("no-such-person"),
        "no subject": idp.token(None),
        "deactivated": idp.token(leaver),
        "garbage": "not.a.jwt",
    }
    replies = {}
    for name, token in cases.items():
        r = await ident.http.get("/people", headers=ident.bearer(token))
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate"), name
        replies[name] = r.json()
    assert len({json.dumps(v, sort_keys=True) for v in replies.values()}) == 1, replies
    for headers in ({"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer "}):
        assert (await ident.http.get("/people", headers=headers)).status_code == 401, headers
    # One credential at a time: a key and a token together are refused.
    both = {**ADMIN, **ident.bearer(idp.token("eng-li"))}
    assert (await ident.http.get("/people", headers=both)).status_code == 401


async def test_unknown_kids_do_not_hammer_the_identity_provider(ident: Ident, idp: IdentityProvider):
    assert (await ident.http.get("/people", headers=ident.bearer(idp.token("eng-li")))).status_code == 200
    before = idp.fetches
    for i in range(10):
        token = idp.token("eng-li", key=idp.stranger, kid=f"kid-random-{i}")
        assert (await ident.http.get("/people", headers=ident.bearer(token))).status_code == 401
    assert idp.fetches - before <= 1  # the JWKS is refetched at most once per interval, not per token
    assert (await ident.http.get("/people", headers=ident.bearer(idp.token("eng-li")))).status_code == 200


async def test_tokens_are_refused_when_oidc_is_not_configured(db: Database, database_url: str, idp: IdentityProvider):
    app = create_app(Settings(database_url=database_url), client=NO_TEMPORAL)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as h:
            r = await h.get("/people", headers={"Authorization": f"Bearer {idp.token('eng-li')}"})
            assert r.status_code == 401 and r.headers.get("WWW-Authenticate")
            assert (await h.get("/people", headers=ADMIN)).status_code == 200


async def test_an_unreachable_identity_provider_is_a_503_and_keys_still_work(database_url: str, idp: IdentityProvider):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        database_url=database_url,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=f"http://127.0.0.1:{port}/jwks.json",
    )
    app = create_app(settings, client=NO_TEMPORAL)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t.test") as h:
            r = await h.get("/people", headers={"Authorization": f"Bearer {idp.token('eng-li')}"})
            assert r.status_code == 503, r.text
            assert (await h.get("/people", headers={"Authorization": "Bearer not.a.jwt"})).status_code == 401
            assert (await h.get("/people", headers=ADMIN)).status_code == 200


# --- demo keys only in demo data ---


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    return url


async def _count_actors(url: str) -> int:
    database = Database(url)
    try:
        async with database.session() as s:
            return len((await s.exec(select(Actor))).all())
    finally:
        await database.dispose()


async def test_the_demo_loader_refuses_production(fresh_sqlite: str):
    env = {
        **os.environ,
        "TICKETFLOW_ENVIRONMENT": "production",
        "TICKETFLOW_DATABASE_URL": fresh_sqlite,
        "TICKETFLOW_ACTION_SIGNING_KEY": SIGNING_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "api.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "production" in done.stderr, (done.returncode, done.stdout, done.stderr)
    assert await _count_actors(fresh_sqlite) == 0  # nothing was loaded


async def test_production_refuses_to_start_while_a_demo_key_works(fresh_sqlite: str):
    from models.tables import ApiKey

    settings = Settings(environment="production", action_signing_key=SIGNING_KEY, database_url=fresh_sqlite)

    async def start() -> None:
        app = create_app(settings, client=NO_TEMPORAL)
        async with app.router.lifespan_context(app):
            pass

    await start()  # no demo data: starts
    database = Database(fresh_sqlite)
    try:
        await store.demo.load_people(database)
        with pytest.raises(RuntimeError, match="demo"):
            await start()
        async with database.session() as s:  # every demo key revoked but one: still refused
            rows = (await s.exec(select(ApiKey))).all()
            for row in rows[1:]:
                row.revoked_at = datetime.now(UTC)
                s.add(row)
            await s.commit()
        with pytest.raises(RuntimeError, match="demo"):
            await start()
        async with database.session() as s:  # the last one expired: starts
            row = (await s.exec(select(ApiKey).where(ApiKey.revoked_at.is_(None)))).one()  # type: ignore[union-attr]
            row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
            s.add(row)
            await s.commit()
        await start()
    finally:
        await database.dispose()
    # In development demo keys are what ``make run`` is for.
    dev = create_app(Settings(database_url=fresh_sqlite), client=NO_TEMPORAL)
    async with dev.router.lifespan_context(dev):
        pass


async def test_a_stolen_key_neither_outstays_its_expiry_nor_evicts_the_owner(ident: Ident):
    """Attacker review: a one-day key (stolen) issued itself a 366-day key, then revoked the
    owner's own key; revoking the stolen key did not get the attacker out."""
    zed = await ident.person("zed")
    owner_id, owner = await ident.key_for(zed, label="owner", expires_in_days=90)
    stolen_id, stolen = await ident.key_for(zed, label="laptop", expires_in_days=1)
    r = await ident.issue(zed, stolen, expires_in_days=366)
    assert r.status_code == 201, r.text
    stolen_expiry = {k["id"]: k for k in (await ident.http.get(f"/people/{zed}/api-keys", headers=ADMIN)).json()}
    assert datetime.fromisoformat(r.json()["expires_at"]) <= datetime.fromisoformat(
        stolen_expiry[stolen_id]["expires_at"]
    )  # no longer than the key it came from
    r = await ident.http.delete(f"/people/{zed}/api-keys/{owner_id}", headers=stolen)
    assert r.status_code == 403, r.text  # the owner's longer-lived key stays
    assert (await ident.http.get(f"/people/{zed}", headers=owner)).status_code == 200
    r = await ident.http.delete(f"/people/{zed}/api-keys/{stolen_id}", headers=owner)
    assert r.status_code == 204, r.text  # and the owner evicts the stolen one
