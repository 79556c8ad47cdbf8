"""Templates: every query on ``template``, the published, immutable versions of each process
template (a ticket type). Validation, YAML and publishing rules are ``api/services/templates.py``'s."""

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Template
from models.template import TemplateSpec, TemplateVersion


def to_version(row: Template) -> TemplateVersion:
    """The stored row as the immutable version tickets pin (its spec parsed)."""
    return TemplateVersion(key=row.key, version=row.version, spec=TemplateSpec.model_validate(row.spec))


async def latest(session: AsyncSession, key: str) -> Template | None:
    q = select(Template).where(Template.key == key).order_by(col(Template.version).desc()).limit(1)
    return (await session.exec(q)).first()


async def version(session: AsyncSession, key: str, number: int) -> Template | None:
    return (await session.exec(select(Template).where(Template.key == key, Template.version == number))).first()


async def versions(session: AsyncSession, key: str) -> list[Template]:
    """Every version of ``key``, oldest first."""
    return list((await session.exec(select(Template).where(Template.key == key).order_by(col(Template.version)))).all())


async def latest_of_each(session: AsyncSession, *, by_key: bool = False) -> list[Template]:
    """The newest version of every template (``by_key``: sorted by key)."""
    newest = select(Template.key, func.max(Template.version).label("v")).group_by(Template.key).subquery()
    q = select(Template).join(newest, (Template.key == newest.c.key) & (Template.version == newest.c.v))
    if by_key:
        q = q.order_by(Template.key)
    return list((await session.exec(q)).all())


def add(session: AsyncSession, row: Template) -> None:
    """A new version, written with the caller's commit (``(key, version)`` is unique)."""
    session.add(row)
