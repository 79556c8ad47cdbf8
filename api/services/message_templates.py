"""Message templates: the words of the messages a customer receives, per ticket type, kind,
language and channel. A template is saved only when it compiles in the sandbox, names nothing
outside the render context and renders against the sample contexts
(``domain/message_templates.py``); otherwise 422 names the field and the line.

``load_message_templates`` loads the defaults shipped in ``templates/messages/*.yaml`` (the
demo loader calls it): a default nobody edited follows the file, one a person saved stays.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

import store.customer_messages
import store.templates
from api.errors import Conflict, Forbidden, NotFound, ProblemList
from api.services import audit
from domain import message_templates as rules
from models.customer_message_tables import CustomerMessageTemplate
from models.customer_messages import ANY, MessageKind, MessageTemplateOut, MessageTemplatePut
from models.db import Database
from models.ticket import ActorRef

AUTHORS = frozenset({"admin", "process_admin"})
DEFAULTS = Path(__file__).resolve().parents[2] / "templates" / "messages"
LOADER = "message-template-loader"  # ``updated_by`` of a default as shipped


def _problems(problems: list[rules.Problem]) -> None:
    if problems:
        raise ProblemList([{"loc": ["body", p.field], "msg": p.msg, "type": p.type, "line": p.line} for p in problems])


async def _check_ticket_type(session: AsyncSession, ticket_type: str) -> None:
    if ticket_type != ANY and await store.templates.latest(session, ticket_type) is None:
        raise NotFound(f"no ticket type {ticket_type!r}: publish its process template first, or use '*'")


async def save(
    session: AsyncSession,
    actor_id: str,
    ticket_type: str,
    kind: MessageKind,
    language: str,
    body: MessageTemplatePut,
) -> tuple[CustomerMessageTemplate, bool]:
    """Validate and store as the next version; (row, changed). The same words again change nothing.
    The caller commits."""
    _problems(rules.validate(body.subject, body.body))
    row = await store.customer_messages.template(session, ticket_type, kind.value, language, body.channel)
    if row is not None and (row.subject, row.body) == (body.subject, body.body):
        return row, False
    before = None if row is None else {"version": row.version, "subject": row.subject, "body": row.body}
    now = datetime.now(UTC)
    if row is None:
        row = CustomerMessageTemplate(
            ticket_type=ticket_type,
            kind=kind.value,
            language=language,
            channel=body.channel,
            subject=body.subject,
            body=body.body,
            version=1,
            updated_by=actor_id,
            updated_at=now,
        )
    else:
        row.subject, row.body, row.version = body.subject, body.body, row.version + 1
        row.updated_by, row.updated_at = actor_id, now
    store.customer_messages.save_template(session, row)
    after = {"version": row.version, "subject": row.subject, "body": row.body}
    target = f"{ticket_type}/{kind.value}/{language}/{body.channel}"
    audit.record(session, actor_id, "message_template.save", "message_template", target, before, after)
    return row, True


async def put(
    session: AsyncSession, actor: ActorRef, ticket_type: str, kind: MessageKind, language: str, body: MessageTemplatePut
) -> tuple[MessageTemplateOut, bool]:
    """``PUT /message-templates/{ticket_type}/{kind}/{language}``: (the template, created)."""
    if not set(actor.roles) & AUTHORS:
        raise Forbidden("only admin or process_admin may change message templates")
    await _check_ticket_type(session, ticket_type)
    existed = await store.customer_messages.template(session, ticket_type, kind.value, language, body.channel)
    row, _ = await save(session, actor.id, ticket_type, kind, language, body)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict("the same template was saved at the same moment; retry") from exc
    return MessageTemplateOut.model_validate(row), existed is None


async def list_all(
    session: AsyncSession, ticket_type: str | None, kind: MessageKind | None, language: str | None
) -> list[MessageTemplateOut]:
    rows = await store.customer_messages.templates(session, ticket_type, kind.value if kind else None, language)
    return [MessageTemplateOut.model_validate(r) for r in rows]


# --- the shipped defaults ---


def read_defaults(path: Path) -> list[tuple[str, MessageKind, str, MessageTemplatePut]]:
    """One file: ``ticket_type`` and ``messages: {kind: {language: {subject, body, channels:
    {channel: {subject, body}}}}}``."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    ticket_type = str(data["ticket_type"])
    out = []
    for kind, by_language in data["messages"].items():
        for language, words in by_language.items():
            channels = dict(words.pop("channels", None) or {})
            try:
                out.append((ticket_type, MessageKind(kind), language, MessageTemplatePut(**words)))
                for channel, own in channels.items():
                    out.append((ticket_type, MessageKind(kind), language, MessageTemplatePut(channel=channel, **own)))
            except (ValidationError, ValueError) as exc:
                raise ValueError(f"{path.name}: {kind}/{language}: {exc}") from exc
    return out


async def load_message_templates(db: Database, folder: Path = DEFAULTS) -> list[tuple[str, int, bool]]:
    """Save every default not there yet, and every default still as shipped whose file changed;
    leave the ones a person saved. (key, version, changed) per template."""
    loaded = []
    with audit.acting_as(LOADER, LOADER):
        async with db.session() as session:
            for path in sorted(folder.glob("*.yaml")):
                for ticket_type, kind, language, body in read_defaults(path):
                    key = f"{ticket_type}/{kind.value}/{language}/{body.channel}"
                    row = await store.customer_messages.template(
                        session, ticket_type, kind.value, language, body.channel
                    )
                    if row is not None and row.updated_by != LOADER:
                        loaded.append((key, row.version, False))
                        continue
                    try:
                        row, changed = await save(session, LOADER, ticket_type, kind, language, body)
                    except ProblemList as exc:
                        raise ValueError(f"{path.name}: {key}: {exc.problems}") from exc
                    loaded.append((key, row.version, changed))
            await session.commit()
    return loaded
