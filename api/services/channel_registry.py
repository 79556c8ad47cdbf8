"""The channel registry: admins register a channel and rotate its secret; inbound requests are
authenticated against it.

Who: an ``admin`` whose regions cover the channel's default region and every region of the
machine account it acts as (a channel acting everywhere needs an admin of every region); anyone
else is refused (403), and a channel outside the caller's regions is not found (404). The secret
is drawn here and shown once, in the reply that issued it; it is never logged, listed or audited.

Authentication of an inbound request (``authenticate``) answers one 401 for an unknown channel,
an inactive one, an inactive machine account and every bad signature alike (the log line says
which), so a caller learns nothing about which channels exist.
"""

import hashlib
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

import store.channels
import store.people
import store.regions
import store.templates
from api import channels as adapters
from api.errors import FieldInvalid, Forbidden, NotFound, Unauthenticated
from api.services import audit, templates
from domain.access import can_access_region
from domain.inbound_auth import BadSignature, verify
from domain.roles import is_machine
from models.channel_tables import InboundChannel
from models.channels import ChannelIssued, ChannelOut, ChannelPut, SecretRotation
from models.schemas import Channel
from models.ticket import ActorRef

log = logging.getLogger(__name__)

ADMIN = "admin"
SECRET_BYTES = 32
REFUSED = "invalid signature"  # the one answer to every refused inbound request
# The ticket channel (models.schemas.Channel) a channel's tickets carry.
TICKET_CHANNEL = {"wechat": Channel.BOT, "qr_form": Channel.QR, "app": Channel.APP}


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def _out(row: InboundChannel) -> ChannelOut:
    return ChannelOut.model_validate(row, from_attributes=True)


def _summary(row: InboundChannel) -> dict[str, Any]:
    """What the audit log keeps of a channel: never a secret."""
    return row.model_dump(exclude={"secret", "previous_secret", "created_at", "updated_at"})


def _require_admin(actor: ActorRef) -> None:
    if ADMIN not in actor.roles:
        raise Forbidden(f"actor {actor.id!r} may not manage channels (admin only)")


def _covers(actor: ActorRef, regions: list[str]) -> bool:
    return all(can_access_region(actor, r) for r in regions)


async def _scope(session: AsyncSession, actor: ActorRef, row: InboundChannel, *, write: bool) -> None:
    """NotFound outside the caller's regions; Forbidden to change a channel acting beyond them."""
    if not can_access_region(actor, row.default_region):
        raise NotFound(f"channel {row.code} not found")
    if write:
        account = await store.people.get(session, row.actor_id)
        if account is not None and not _covers(actor, list(account.regions)):
            raise Forbidden(f"channel {row.code} acts as {row.actor_id}, who works beyond your regions")


async def _visible(session: AsyncSession, actor: ActorRef, code: str, *, write: bool = False) -> InboundChannel:
    _require_admin(actor)
    row = await store.channels.get(session, code, lock=write)
    if row is None:
        raise NotFound(f"channel {code} not found")
    await _scope(session, actor, row, write=write)
    return row


async def _check(session: AsyncSession, actor: ActorRef, body: ChannelPut) -> str:
    """The adapter the channel uses, once every reference in ``body`` checks out."""
    adapter = body.adapter or adapters.default_adapter(body.kind)
    found = adapters.adapter(adapter) if adapter else None
    if found is None or found.kind != body.kind:
        names = ", ".join(a.name for a in adapters.ADAPTERS.values() if a.kind == body.kind)
        raise FieldInvalid("adapter", f"no {body.kind} adapter {adapter!r} (there are: {names})", "unknown_adapter")
    name: str = found.name
    if await store.regions.get(session, body.default_region) is None:
        raise FieldInvalid("default_region", f"unknown region {body.default_region!r}", "unknown_region")
    if not can_access_region(actor, body.default_region):
        raise Forbidden(f"actor {actor.id!r} may not manage channels of region {body.default_region!r}")
    account = await store.people.get(session, body.actor_id)
    if account is None or not account.active or not is_machine(account.roles):
        raise FieldInvalid(
            "actor_id", "not an active channel account (a person whose roles are only channel)", "not_a_channel_account"
        )
    if not _covers(actor, list(account.regions)):
        raise Forbidden(f"{body.actor_id} works beyond your regions: an admin of them registers this channel")
    if not can_access_region(ActorRef(id=account.id, regions=list(account.regions)), body.default_region):
        raise FieldInvalid("default_region", f"{body.actor_id} does not work in {body.default_region}", "not_served")
    if body.default_ticket_type is not None:
        row = await store.templates.latest(session, body.default_ticket_type)
        if row is None:
            raise FieldInvalid("default_ticket_type", "unknown ticket type", "unknown_ticket_type")
        spec = templates.to_version(row).spec
        channel = TICKET_CHANNEL[body.kind].value
        if spec.channels and channel not in spec.channels:
            raise FieldInvalid(
                "default_ticket_type", f"{spec.key} tickets are not raised through {channel}", "channel_not_allowed"
            )
    return name


async def put_channel(
    session: AsyncSession, actor: ActorRef, code: str, body: ChannelPut, secret: str | None = None
) -> tuple[ChannelOut | ChannelIssued, bool]:
    """Create the channel (its secret shown once: ``ChannelIssued``) or replace its settings
    (the secret stays). The second value: whether it was created. ``secret``: the demo loader's
    published demo secret instead of a new random one (never over HTTP)."""
    _require_admin(actor)
    adapter = await _check(session, actor, body)
    now = datetime.now(UTC)
    row = await store.channels.get(session, code, lock=True)
    settings = {**body.model_dump(exclude={"adapter"}), "adapter": adapter}
    if row is None:
        secret = secret or new_secret()
        row = InboundChannel(
            code=code, secret=secret, created_at=now, updated_at=now, secret_rotated_at=now, **settings
        )
        store.channels.save(session, row)
        audit.record(session, actor, "channel.create", "channel", code, None, _summary(row))
        await session.commit()
        return ChannelIssued(**_out(row).model_dump(), secret=secret), True
    await _scope(session, actor, row, write=True)
    before = _summary(row)
    for name, value in settings.items():
        setattr(row, name, value)
    old, new = audit.changes(before, _summary(row))
    if new:
        row.updated_at = now
        store.channels.save(session, row)
        audit.record(session, actor, "channel.update", "channel", code, old, new)
    await session.commit()
    return _out(row), False


async def rotate_secret(session: AsyncSession, actor: ActorRef, code: str, body: SecretRotation) -> ChannelIssued:
    """A new secret; the one it replaces still verifies for ``grace_seconds``. A rotation during
    an earlier one's grace period ends that period: only one previous secret is kept."""
    row = await _visible(session, actor, code, write=True)
    now = datetime.now(UTC)
    secret = new_secret()
    row.previous_secret = row.secret if body.grace_seconds else None
    row.previous_secret_until = now + timedelta(seconds=body.grace_seconds) if body.grace_seconds else None
    row.secret, row.secret_rotated_at, row.updated_at = secret, now, now
    store.channels.save(session, row)
    audit.record(
        session,
        actor,
        "channel.rotate_secret",
        "channel",
        code,
        None,
        {"previous_secret_until": row.previous_secret_until},
    )
    await session.commit()
    return ChannelIssued(**_out(row).model_dump(), secret=secret)


async def get_channel(session: AsyncSession, actor: ActorRef, code: str) -> ChannelOut:
    return _out(await _visible(session, actor, code))


async def list_channels(session: AsyncSession, actor: ActorRef) -> list[ChannelOut]:
    _require_admin(actor)
    return [_out(r) for r in await store.channels.all_channels(session) if can_access_region(actor, r.default_region)]


# --- inbound authentication ---

_DECOY = new_secret()  # an unknown channel is checked against this, so it costs what a known one does


def refuse(code: str, reason: str) -> Unauthenticated:
    """The one 401; the reason goes to the log only."""
    log.warning("inbound request refused: channel=%r reason=%s", code[:64], reason)
    return Unauthenticated(REFUSED)


async def _channel_and_account(session: AsyncSession, code: str) -> tuple[InboundChannel | None, ActorRef | None]:
    row = await store.channels.get(session, code)
    if row is not None:
        session.expunge(row)  # read-only from here: a rollback later in the request leaves it readable
    if row is None or not row.active:
        return row, None
    account = await store.people.get(session, row.actor_id)
    if account is None or not account.active or not is_machine(account.roles):
        return row, None
    return row, ActorRef(id=account.id, name=account.name, roles=["channel"], regions=list(account.regions))


async def authenticate(
    session: AsyncSession, code: str, timestamp: str | None, signature: str | None, body: bytes
) -> tuple[InboundChannel, ActorRef]:
    """The channel and the machine account it acts as, if ``body`` is signed with its secret
    within the replay window; else the one 401."""
    row, account = await _channel_and_account(session, code)
    now = datetime.now(UTC)
    try:
        verify(row.secrets_at(now) if row is not None else [_DECOY], timestamp, signature, body)
    except BadSignature as exc:
        raise refuse(code, "unknown channel" if row is None else exc.reason) from None
    if row is None:  # only if someone signed with the decoy, which never leaves this process
        raise refuse(code, "unknown channel")
    if account is None:
        raise refuse(code, "channel or its account inactive" if row.active else "channel inactive")
    return row, account


async def handshake(session: AsyncSession, code: str, params: dict[str, str]) -> str:
    """The body answering the platform's verification request, or the one 401."""
    row, account = await _channel_and_account(session, code)
    if row is None or account is None:
        _decoy_handshake(params)
        raise refuse(code, "handshake: unknown or inactive channel")
    adapter = adapters.adapter(row.adapter)
    answer = adapter.handshake(params, row.secrets_at(datetime.now(UTC)), time.time()) if adapter else None
    if answer is None:
        raise refuse(code, "handshake refused")
    return answer


def _decoy_handshake(params: dict[str, str]) -> None:
    """The work of a handshake check, for a channel that does not exist."""
    expected = hashlib.sha1("".join(sorted([_DECOY, params.get("timestamp", ""), params.get("nonce", "")])).encode())
    hmac.compare_digest(expected.hexdigest().encode(), params.get("signature", "").encode())
