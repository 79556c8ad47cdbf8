"""The audit log: ``record`` adds one entry to the caller's session, so it commits (or rolls
back) with the change it describes; ``list_entries`` reads it for admins of every region.

Which credential made a change comes from the request: ``api/deps.py`` calls ``use_credential``
once it knows the caller, and ``record`` takes it from there (a context variable), so services
that are not handed the credential (templates, prices) still record it. A change made outside a
request names what made it with ``acting_as`` (e.g. the demo loader).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlmodel.ext.asyncio.session import AsyncSession

import store.audit
from api.errors import Forbidden
from api.services.paging import cursor_key
from domain.access import ALL_REGIONS
from models.audit import AuditEntry, AuditPage
from models.tables import AuditLog
from models.ticket import ActorRef

READERS = frozenset({"admin"})
# (actor id, credential) of the request being served; None outside requests.
_credential: ContextVar[tuple[str, str] | None] = ContextVar("audit_credential", default=None)


def use_credential(actor_id: str, credential: str) -> None:
    _credential.set((actor_id, credential))


@contextmanager
def acting_as(actor_id: str, credential: str) -> Iterator[None]:
    token = _credential.set((actor_id, credential))
    try:
        yield
    finally:
        _credential.reset(token)


def _credential_of(actor_id: str) -> str | None:
    current = _credential.get()
    return current[1] if current is not None and current[0] == actor_id else None


def record(
    session: AsyncSession,
    actor: ActorRef | str,
    action: str,
    target_type: str,
    target_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an entry to ``session`` (the caller commits it with the change). Never pass a secret."""
    actor_id = actor if isinstance(actor, str) else actor.id
    store.audit.add(
        session,
        AuditLog(
            at=datetime.now(UTC),
            actor_id=actor_id,
            credential=_credential_of(actor_id),
            action=action,
            target_type=target_type,
            target_id=target_id,
            before=to_jsonable_python(before) if before is not None else None,
            after=to_jsonable_python(after) if after is not None else None,
        ),
    )


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only what differs: (old values, new values) of the keys whose JSON value changed."""
    old, new = to_jsonable_python(before), to_jsonable_python(after)
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


# --- reading ---


async def list_entries(
    session: AsyncSession,
    actor: ActorRef,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AuditPage:
    """Newest first, keyset pages on the entry id. Admins of every region only: the log spans
    all regions."""
    if READERS.isdisjoint(actor.roles) or ALL_REGIONS not in actor.regions:
        raise Forbidden("only an admin of every region reads the audit log")
    rows, next_cursor = await store.audit.page(
        session,
        target_type=target_type,
        target_id=target_id,
        actor_id=actor_id,
        action=action,
        limit=limit,
        after=cursor_key(cursor, int),
    )
    return AuditPage(items=[AuditEntry.model_validate(r, from_attributes=True) for r in rows], next_cursor=next_cursor)
