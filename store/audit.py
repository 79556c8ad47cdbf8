"""The audit log: every query on ``audit_log`` — an entry added in the transaction of the
change it describes, and keyset pages of them, newest first. Who may read it and which
credential an entry names are ``api/services/audit.py``'s."""

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import AuditLog
from store import keyset


def add(session: AsyncSession, entry: AuditLog) -> None:
    """Written with the caller's commit, or rolled back with it."""
    session.add(entry)


async def page(
    session: AsyncSession,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    limit: int,
    after: keyset.Key | None = None,
) -> tuple[list[AuditLog], str | None]:
    """Newest first, keyset-paged on the entry id."""
    q = select(AuditLog)
    for column, value in (
        (AuditLog.target_type, target_type),
        (AuditLog.target_id, target_id),
        (AuditLog.actor_id, actor_id),
        (AuditLog.action, action),
    ):
        if value is not None:
            q = q.where(col(column) == value)
    if after is not None:
        q = q.where(keyset.before([col(AuditLog.id)], after))
    rows = list((await session.exec(q.order_by(col(AuditLog.id).desc()).limit(limit + 1))).all())
    return keyset.page(rows, limit, lambda e: (e.id,))
