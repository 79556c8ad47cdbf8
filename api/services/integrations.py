"""Business-system sources (ERP, shop, devices): register them (each with its signing secret and
the machine account it acts as), publish their mapping rules (immutable versions, checked on save
like templates), and load the preset ones for the demo. What their signed events do is
``api/services/integration_events.py``'s; see docs/integrations.md.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import yaml
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

import store.integrations
import store.people
import store.regions
import store.templates
from api.errors import Conflict, FieldInvalid, Forbidden, NotFound, ProblemList
from api.services import audit, subscriptions
from api.services import templates as template_service
from domain import mapping
from domain.access import ALL_REGIONS
from domain.roles import is_machine
from models.db import Database
from models.integration_tables import IntegrationMapping, IntegrationSource
from models.integrations import MappingSpec, MappingVersion, SourceOut, SourceUpsert
from models.settings import get_settings
from models.ticket import ActorRef

MAPPING_AUTHORS = frozenset({"admin", "process_admin"})
PRESETS = Path(__file__).resolve().parent.parent.parent / "templates" / "mappings"
LOADER = ActorRef(id="admin", name="Ops Admin", roles=["admin"], regions=[ALL_REGIONS])


# --- sources ---


def _source_out(row: IntegrationSource, secret: str | None = None) -> SourceOut:
    return SourceOut(**row.model_dump(exclude={"secret", "previous_secret"}), secret=secret)


async def register_source(
    session: AsyncSession, actor: ActorRef, code: str, body: SourceUpsert, secret: str | None = None
) -> tuple[SourceOut, bool]:
    """Register ``code`` (a new secret, shown once) or change it; ``rotate_secret`` makes a new
    secret and keeps the old one working for ``previous_valid_hours``. Admins of every region."""
    if "admin" not in actor.roles or ALL_REGIONS not in actor.regions:
        raise Forbidden("only an admin of every region registers business-system sources")
    account = await store.people.get(session, body.actor_id)
    if account is None or not account.active:
        raise FieldInvalid("actor_id", f"unknown or inactive account {body.actor_id!r}", "unknown_actor")
    if not is_machine(account.roles):
        raise FieldInvalid("actor_id", "a source acts as a machine account (role channel only)", "not_a_machine")
    now = datetime.now(UTC)
    row = await store.integrations.source(session, code, lock=True)
    created = row is None
    before = None if row is None else _source_out(row).model_dump(mode="json")
    shown: str | None = None
    if row is None:
        shown = secret or token_urlsafe(32)
        row = IntegrationSource(
            code=code, secret=shown, created_by=actor.id, created_at=now, **_settable(body), updated_at=now
        )
        store.integrations.add(session, row)
    else:
        for name, value in _settable(body).items():
            setattr(row, name, value)
        row.updated_at = now
        if body.rotate_secret:
            shown = token_urlsafe(32)
            row.previous_secret, row.secret, row.rotated_at = row.secret, shown, now
            row.previous_valid_until = now + timedelta(hours=body.previous_valid_hours)
    after = _source_out(row).model_dump(mode="json")
    action = "create" if created else "rotate_secret" if body.rotate_secret else "update"
    audit.record(session, actor, f"integration_source.{action}", "integration_source", code, before, after)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"source {code!r} was registered by another request at the same moment; retry") from exc
    return _source_out(row, shown), created


def _settable(body: SourceUpsert) -> dict[str, Any]:
    return body.model_dump(include={"name", "channel", "actor_id", "active"})


async def _source(session: AsyncSession, code: str) -> IntegrationSource:
    row = await store.integrations.source(session, code)
    if row is None:
        raise NotFound(f"source {code!r} not found")
    return row


# --- mappings ---


async def check_mapping(session: AsyncSession, source: IntegrationSource, spec: MappingSpec) -> None:
    """Every problem with ``spec`` as one 422, each at its place in the body."""
    templates = {}
    for key in {r.template for r in spec.rules}:
        row = await store.templates.latest(session, key)
        templates[key] = template_service.to_version(row).spec if row is not None else None
    regions = {code for code, _ in await store.regions.names(session)}
    problems = mapping.spec_problems(spec, templates, regions, source.channel)
    if problems:
        raise ProblemList([{"loc": ["body", *p.loc], "msg": p.msg, "type": p.type} for p in problems])


def _version(row: IntegrationMapping) -> MappingVersion:
    return MappingVersion(
        source=row.source,
        version=row.version,
        spec=MappingSpec.model_validate(row.spec),
        created_by=row.created_by,
        created_at=row.created_at,
    )


async def publish_mapping(
    session: AsyncSession, actor: ActorRef, code: str, spec: MappingSpec
) -> tuple[MappingVersion, bool]:
    """Check and publish as version N+1; the same rules as the latest version publish nothing."""
    if not set(actor.roles) & MAPPING_AUTHORS:
        raise Forbidden("only admin or process_admin may publish mapping rules")
    source = await _source(session, code)
    await check_mapping(session, source, spec)
    subscriptions.check_status_sync(spec.status_sync, get_settings().environment == "development")
    current = await store.integrations.latest_mapping(session, code)
    body = spec.model_dump(mode="json")
    if current is not None and current.spec == body:
        return _version(current), False
    row = IntegrationMapping(
        source=code,
        version=(current.version if current else 0) + 1,
        spec=body,
        created_by=actor.id,
        created_at=datetime.now(UTC),
    )
    store.integrations.add(session, row)
    await subscriptions.sync_status_subscription(session, source, spec.status_sync)  # progress back to the source
    before = {"version": current.version} if current else None
    audit.record(
        session, actor, "integration_mapping.publish", "integration_source", code, before, {"version": row.version}
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"another mapping of {code!r} was published at the same moment; retry") from exc
    return _version(row), True


async def get_mapping(session: AsyncSession, code: str, version: int | None = None) -> MappingVersion:
    if version is None:
        row = await store.integrations.latest_mapping(session, code)
    else:
        row = await store.integrations.mapping_version(session, code, version)
    if row is None:
        raise NotFound(f"no mapping of {code!r}" + (f" version {version}" if version else ""))
    return _version(row)


# --- presets (the demo loader) ---


async def load_presets(
    db: Database, folder: Path = PRESETS, secrets: Mapping[str, str] | None = None
) -> list[tuple[str, int, bool, str | None]]:
    """Register each preset source of ``folder`` (``<code>.yaml``: its ``source`` and ``rules``)
    that is not registered yet — with the secret ``secrets`` gives it, else a new one — and
    publish its rules (unchanged rules publish nothing). Needs the preset templates published
    first. Returns (source, mapping version, newly published, the secret of a source just
    registered)."""
    out = []
    with audit.acting_as(LOADER.id, "demo-loader"):
        async with db.session() as session:
            for path in sorted(folder.glob("*.yaml")):
                code, doc = path.stem, yaml.safe_load(path.read_text())
                secret = None
                preset_source = doc.pop("source", None)
                if await store.integrations.source(session, code) is None:
                    body = SourceUpsert.model_validate(preset_source)
                    registered, _ = await register_source(session, LOADER, code, body, (secrets or {}).get(code))
                    secret = registered.secret
                version, new = await publish_mapping(session, LOADER, code, MappingSpec.model_validate(doc))
                out.append((code, version.version, new, secret))
    return out
