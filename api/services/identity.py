"""Who is calling: an API key of the ``api_key`` table, or an OpenID Connect bearer token.

Nothing else names an actor. Both end at an active person's record, whose roles and regions
are the caller's (a token's own claims about roles are ignored). Every refusal is the same
401 text, so a reply never tells which ids or keys exist.

OIDC (``settings.oidc_issuer``, ``oidc_audience`` and ``oidc_jwks_url`` all set): the token's
header names an allowed algorithm — ``settings.oidc_algorithms`` minus ``none`` and every HMAC
(``HS*``) algorithm, whatever is configured, so a public key can never be used as an HMAC
secret — and a ``kid`` of the provider's JWKS (fetched off the event loop, cached, refetched
for an unknown ``kid`` at most once per ``JWKS_REFETCH_S``); the signature, ``exp``, ``iss``
and ``aud`` are required and checked; the claim ``settings.oidc_actor_claim`` is the person's id.
"""

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import jwt
from sqlmodel.ext.asyncio.session import AsyncSession

import store.people
from api.errors import ServiceUnavailable, Unauthenticated
from models.demo import demo_api_key
from models.settings import Settings
from models.tables import Actor, ApiKey
from models.ticket import ActorRef

# The one answer to a credential that does not work (unknown, revoked, expired, deactivated…).
REFUSED = "invalid or expired credentials"
MISSING = "send an API key (X-API-Key) or a bearer token (Authorization: Bearer) to say who is acting"
JWKS_REFETCH_S = 60.0  # an unknown kid refetches the JWKS at most this often
JWKS_CACHE_S = 300.0
JWKS_TIMEOUT_S = 5.0
OIDC = "oidc"  # the credential id recorded for a bearer token


@dataclass(frozen=True)
class Credential:
    """How the caller proved who they are: an API key (``id`` is its public id) or an OIDC
    token (``id`` is ``"oidc"``). Recorded in the audit log; never a secret."""

    kind: Literal["api_key", "oidc"]
    id: str
    actor_id: str


def actor_ref(row: Actor) -> ActorRef:
    """The acting person as their record says: roles, regions and groups (a ``group:`` task's
    candidates) — never what a request claims."""
    return ActorRef(id=row.id, name=row.name, roles=list(row.roles), regions=list(row.regions), groups=list(row.groups))


# --- API keys ---


async def by_api_key(session: AsyncSession, secret: str) -> tuple[Actor, Credential]:
    if not secret.strip():
        raise Unauthenticated(REFUSED)
    found = await store.people.key_and_person(session, ApiKey.hash(secret))
    if found is None:
        raise Unauthenticated(REFUSED)
    key, actor = found
    if not key.valid_at(datetime.now(UTC)) or not actor.active:
        raise Unauthenticated(REFUSED)
    return actor, Credential(kind="api_key", id=key.id, actor_id=actor.id)


# --- OIDC ---


def safe_algorithms(configured: list[str]) -> list[str]:
    """The configured algorithms PyJWT knows, without ``none`` and without any HMAC one."""
    known = jwt.algorithms.get_default_algorithms()
    return [
        a for a in dict.fromkeys(configured) if a in known and a.lower() != "none" and not a.upper().startswith("HS")
    ]


def oidc_enabled(settings: Settings) -> bool:
    """All three settings, or none (anything in between is a configuration error)."""
    parts = [settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url]
    if any(parts) and not all(parts):
        raise RuntimeError(
            "OIDC needs TICKETFLOW_OIDC_ISSUER, TICKETFLOW_OIDC_AUDIENCE and TICKETFLOW_OIDC_JWKS_URL "
            "together (or none of them)"
        )
    return all(parts)


class OidcVerifier:
    """Verifies bearer tokens against the provider's JWKS; one per app."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url
        self.issuer, self.audience, self.claim = settings.oidc_issuer, settings.oidc_audience, settings.oidc_actor_claim
        self.leeway = settings.oidc_leeway_s
        self.algorithms = safe_algorithms(settings.oidc_algorithms)
        if not self.algorithms:
            raise RuntimeError(
                f"TICKETFLOW_OIDC_ALGORITHMS {settings.oidc_algorithms} has no asymmetric algorithm: "
                "none and HS* are never accepted"
            )
        self.jwks = jwt.PyJWKClient(
            settings.oidc_jwks_url, cache_jwk_set=True, lifespan=JWKS_CACHE_S, timeout=JWKS_TIMEOUT_S
        )
        self._lock = threading.Lock()
        self._fetched_at: float | None = None

    def _signing_key(self, kid: str) -> jwt.PyJWK | None:
        """Blocking (HTTP): run in a thread."""
        with self._lock:
            try:
                keys = self.jwks.get_signing_keys()
                if self._fetched_at is None:
                    self._fetched_at = time.monotonic()
                key = self.jwks.match_kid(keys, kid)
                if key is None and time.monotonic() - self._fetched_at >= JWKS_REFETCH_S:
                    self._fetched_at = time.monotonic()
                    key = self.jwks.match_kid(self.jwks.get_signing_keys(refresh=True), kid)
            except jwt.PyJWKClientConnectionError as exc:
                raise ServiceUnavailable("the identity provider's keys cannot be fetched now; retry shortly") from exc
            except jwt.PyJWKClientError:  # a JWKS without usable keys
                return None
            return key

    async def subject(self, token: str) -> str:
        """The person id the token speaks for, or ``Unauthenticated``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(REFUSED) from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.algorithms or not isinstance(kid, str) or not kid:
            raise Unauthenticated(REFUSED)
        key = await asyncio.to_thread(self._signing_key, kid)
        if key is None:
            raise Unauthenticated(REFUSED)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", self.claim]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthenticated(REFUSED) from exc
        subject = claims.get(self.claim)
        if not isinstance(subject, str) or not 0 < len(subject) <= 64:
            raise Unauthenticated(REFUSED)
        return subject


async def by_token(session: AsyncSession, verifier: OidcVerifier | None, token: str) -> tuple[Actor, Credential]:
    if verifier is None or not token.strip():
        raise Unauthenticated(REFUSED)
    actor = await store.people.get(session, await verifier.subject(token))
    if actor is None or not actor.active:
        raise Unauthenticated(REFUSED)
    return actor, Credential(kind="oidc", id=OIDC, actor_id=actor.id)


# --- demo keys in production ---


async def working_demo_keys(session: AsyncSession) -> list[ApiKey]:
    """Keys neither revoked nor expired that are some person's ``demo-<id>`` (``models/demo.py``):
    public knowledge, so never acceptable in production."""
    ids = await store.people.ids(session)
    found: list[ApiKey] = []
    for start in range(0, len(ids), 500):
        hashes = [ApiKey.hash(demo_api_key(i)) for i in ids[start : start + 500]]
        found += await store.people.working_keys_by_hash(session, hashes, datetime.now(UTC))
    return found


async def revoke_demo_keys(session: AsyncSession) -> list[ApiKey]:
    """Revoke every working demo key (``python -m api.demo --revoke-demo-keys``)."""
    keys = await working_demo_keys(session)
    if keys:
        await store.people.revoke_keys(session, [k.id for k in keys], datetime.now(UTC))
    return keys
