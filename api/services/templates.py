"""Templates: publish immutable versions, read them, import/export YAML, validate."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

import store.templates
from api.bounds import MAX_DEPTH, find_nul
from api.errors import Conflict, Forbidden, NotFound, ProblemList
from api.services import audit
from domain.spawn_validation import spawn_problems
from domain.template_validation import Problem, validate_template
from models.tables import Template
from models.template import TemplateSpec, TemplateVersion
from models.ticket import ActorRef
from store.templates import to_version  # re-exported: callers use templates.to_version
from workflows.registry import activity_signatures

AUTHORS = frozenset({"admin", "process_admin"})


def check(spec: TemplateSpec, published: Mapping[str, TemplateSpec] | None = None) -> list[Problem]:
    """Every problem of ``spec``; with the published templates, also its spawn nodes' children
    against the templates they open (domain/spawn_validation.py)."""
    return validate_template(spec, activity_signatures()) + spawn_problems(spec, published)


def _raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise ProblemList([{"loc": ["body", *p.loc], "msg": p.msg, "type": p.type} for p in problems])


class _BoundedLoader(yaml.SafeLoader):
    """YAML without aliases (no "billion laughs": ``*a`` repeating a large ``&a``) and at most
    ``MAX_DEPTH`` levels deep (PyYAML composes recursively)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed", mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nests deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def parse_yaml(text: str) -> TemplateSpec:
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise ProblemList([{"loc": ["body"], "msg": f"not valid YAML: {exc}", "type": "yaml_invalid"}]) from exc
    if (found := find_nul(data)) is not None:
        path, in_key = found
        what = "a key" if in_key else "a string"
        raise ProblemList(
            [{"loc": ["body", *path], "msg": f"NUL characters are not allowed in {what}", "type": "nul_character"}]
        )
    try:
        return TemplateSpec.model_validate(data)
    except ValidationError as exc:
        raise ProblemList(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from exc


async def get_version(session: AsyncSession, key: str, version: int | None = None) -> TemplateVersion:
    if version is None:
        row = await store.templates.latest(session, key)
    else:
        row = await store.templates.version(session, key, version)
    if row is None:
        raise NotFound(f"template {key!r}" + (f" version {version}" if version else "") + " not found")
    return to_version(row)


async def publish(session: AsyncSession, actor: ActorRef, spec: TemplateSpec) -> tuple[TemplateVersion, bool]:
    """Validate and publish as version N+1; the same spec as the latest version publishes nothing."""
    if not set(actor.roles) & AUTHORS:
        raise Forbidden("only admin or process_admin may publish templates")
    _raise_problems(check(spec, {v.key: v.spec for v in await all_latest_specs(session)}))
    current = await store.templates.latest(session, spec.key)
    body = spec.model_dump(mode="json")
    if current is not None and current.spec == body:
        return to_version(current), False
    row = Template(
        key=spec.key,
        version=(current.version if current else 0) + 1,
        name=spec.name,
        spec=body,
        created_by=actor.id,
        created_at=datetime.now(UTC),
    )
    store.templates.add(session, row)
    audit.record(
        session,
        actor,
        "template.publish",
        "template",
        spec.key,
        {"version": current.version} if current else None,
        {"version": row.version, "name": row.name},
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(f"another version of {spec.key!r} was published at the same moment; retry") from exc
    return to_version(row), True


async def list_latest(session: AsyncSession) -> list[dict[str, Any]]:
    return [_summary(r) for r in await store.templates.latest_of_each(session, by_key=True)]


async def list_versions(session: AsyncSession, key: str) -> list[dict[str, Any]]:
    rows = await store.templates.versions(session, key)
    if not rows:
        raise NotFound(f"template {key!r} not found")
    return [_summary(r) for r in rows]


def _summary(r: Template) -> dict[str, Any]:
    return {"key": r.key, "version": r.version, "name": r.name, "created_by": r.created_by, "created_at": r.created_at}


async def all_latest_specs(session: AsyncSession) -> list[TemplateVersion]:
    return [to_version(r) for r in await store.templates.latest_of_each(session)]


def export_yaml(version: TemplateVersion) -> str:
    """Compact YAML (defaults left out, but every node keeps its ``type``) that imports back."""
    data = version.spec.model_dump(mode="json", exclude_defaults=True)
    data["nodes"] = [
        {"id": node.id, "type": node.type, **{k: v for k, v in dumped.items() if k not in ("id", "type")}}
        for node, dumped in zip(version.spec.nodes, data["nodes"], strict=True)
    ]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
