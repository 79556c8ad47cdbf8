"""A person's API keys: issue (the secret shown once), list (never the secret), revoke.

A person may hold several keys at once, so a key is rotated by issuing the next one and then
revoking the old: nobody is locked out in between. Every key expires (the issuer may ask for a
shorter life than ``api_key_default_ttl_days``, never a longer one than ``api_key_max_ttl_days``);
only the demo data's keys never do.

Who: the person themselves, or an admin whose regions cover them, issues; the person, an admin
or hr (of their regions) lists and revokes — a key is someone's credential, so hr may take it
away but not mint one. No request revokes the key it is made with (409): whoever holds one key,
a fuzzer included, cannot lock themselves out. A key never yields more than it has: a key a person
issues themselves with a key expires no later than that key, and with a key they may revoke only
their keys that expire no later than it (a stolen key neither outstays its expiry nor evicts the
owner's longer-lived keys). Each issue and revocation is audited (key id,
label, expiry; never the secret or its hash).
"""

import secrets
from datetime import UTC, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

import store.people
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound
from api.services import audit
from api.services.identity import Credential
from api.services.people import ADMIN, self_or_writer_row
from models.people import ApiKeyCreate, ApiKeyIssued, ApiKeyOut
from models.settings import Settings
from models.tables import ApiKey
from models.ticket import ActorRef

MAX_WORKING_KEYS = 10  # per person: rotation needs two, a few devices a few more


def _out(row: ApiKey, credential: Credential | None) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        person_id=row.actor_id,
        label=row.label,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        current=credential is not None and credential.kind == "api_key" and credential.id == row.id,
    )


def _summary(row: ApiKey) -> dict[str, object]:
    """What the audit log keeps of a key."""
    return {"key_id": row.id, "label": row.label, "expires_at": row.expires_at}


async def _calling_key(session: AsyncSession, credential: Credential | None) -> ApiKey | None:
    if credential is None or credential.kind != "api_key":
        return None
    return await store.people.get_key(session, credential.id)


async def issue(
    session: AsyncSession,
    actor: ActorRef,
    person_id: str,
    body: ApiKeyCreate,
    settings: Settings,
    credential: Credential | None = None,
) -> ApiKeyIssued:
    if actor.id != person_id and ADMIN not in actor.roles:
        raise Forbidden(f"actor {actor.id!r} may not issue API keys for others (the person or an admin)")
    days = body.expires_in_days if body.expires_in_days is not None else settings.api_key_default_ttl_days
    if days > settings.api_key_max_ttl_days:
        raise FieldInvalid("expires_in_days", f"at most {settings.api_key_max_ttl_days} days", "too_long")
    row = await self_or_writer_row(session, actor, person_id, lock=True)
    if not row.active:
        raise Conflict(f"{person_id} is deactivated")
    now = datetime.now(UTC)
    working = await store.people.count_working_keys(session, person_id, now)
    if working >= MAX_WORKING_KEYS:
        raise Conflict(f"{person_id} holds {working} working keys already: revoke one first")
    expires = now + timedelta(days=days)
    calling = await _calling_key(session, credential)
    if actor.id == person_id and calling is not None and calling.expires_at is not None:
        expires = min(expires, calling.expires_at)  # a stolen key never buys a longer stay
    secret = f"tf_{secrets.token_urlsafe(32)}"
    key = ApiKey.for_secret(person_id, secret, created_by=actor.id, expires_at=expires, label=body.label)
    store.people.add_key(session, key)
    audit.record(session, actor, "api_key.issue", "person", person_id, None, _summary(key))
    await session.commit()
    return ApiKeyIssued(**_out(key, None).model_dump(), api_key=secret)


async def list_keys(session: AsyncSession, actor: ActorRef, credential: Credential, person_id: str) -> list[ApiKeyOut]:
    """Newest first, revoked and expired ones included."""
    await self_or_writer_row(session, actor, person_id)
    return [_out(r, credential) for r in await store.people.keys_of(session, person_id)]


async def revoke(session: AsyncSession, actor: ActorRef, credential: Credential, person_id: str, key_id: str) -> None:
    """Revoke one key (again: nothing changes). 404 for a key that is not this person's."""
    await self_or_writer_row(session, actor, person_id)
    row = await store.people.get_key(session, key_id)
    if row is None or row.actor_id != person_id:
        raise NotFound(f"{person_id} has no API key {key_id!r}")
    if credential.kind == "api_key" and credential.id == key_id:
        raise Conflict("this request is made with that key: revoke it with another credential")
    if row.revoked_at is not None:
        return
    calling = await _calling_key(session, credential)
    if (
        actor.id == person_id
        and calling is not None
        and calling.expires_at is not None
        and (row.expires_at is None or row.expires_at > calling.expires_at)
    ):
        raise Forbidden(
            f"the key this request is made with expires before {key_id}: revoke it with a longer-lived "
            "credential, or ask an admin"
        )
    now = datetime.now(UTC)
    if await store.people.revoke_keys(session, [key_id], now):
        audit.record(session, actor, "api_key.revoke", "person", person_id, _summary(row), {"revoked_at": now})
    await session.commit()
