"""Customer messages, the pure part: which ticket events the customer hears about, on which
channel, when (quiet hours), and the words — Jinja2 in a sandbox, checked when a template is
saved so that a template that is accepted always renders.

A template may name only what ``models.customer_messages.RenderContext`` holds (the ticket's id,
title, status and type; the customer's and the engineer's name; the expected arrival, the
question, the tracking link) and use a few plain filters. Attribute access beyond those
fields, calls, loops, assignments, macros, imports and arithmetic are refused at save time with
the line they are on, before the sandbox (``ImmutableSandboxedEnvironment``, ``StrictUndefined``,
no globals) would refuse them at render time. No loops and no size-multiplying filters also
bound what a render costs: its output grows at most linearly with the template.
"""

import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from models.common import TicketStatus
from models.customer_messages import (
    ANY,
    CONSENT_KEY,
    DEFAULT_LANGUAGE,
    ORIGIN,
    PREFERENCE,
    CustomerChannel,
    MessageKind,
    PersonView,
    QuietHours,
    RenderContext,
    TicketView,
)
from models.ticket import TicketEvent

# --- which events the customer hears about ---

ON_THE_WAY_EVENT = "event:on_the_way"  # a template event carrying ``eta`` (a new arrival time)


def kind_of(event: TicketEvent, told: Iterable[str] = ()) -> MessageKind | None:
    """The message a ticket event gives the customer, if any. ``told``: kinds this ticket's
    customer already has rows for (the first ``start`` sets out; later ones do not repeat it).

    - accepted: the ticket leaves ``new`` for someone's hands (claimed, assigned, dispatched);
    - on_the_way: the holder starts the work, or an ``on_the_way`` event (a new ETA);
    - info_needed: ``request_info``;
    - resolved / closed: the ticket becomes resolved / closed.
    """
    before, after = event.from_status, event.to_status
    if event.action == "request_info":
        return MessageKind.INFO_NEEDED
    if event.action == ON_THE_WAY_EVENT:
        return MessageKind.ON_THE_WAY
    if event.action == "start" and MessageKind.ON_THE_WAY.value not in set(told):
        return MessageKind.ON_THE_WAY
    if after == TicketStatus.CLOSED and before != TicketStatus.CLOSED:
        return MessageKind.CLOSED
    if after == TicketStatus.RESOLVED and before != TicketStatus.RESOLVED:
        return MessageKind.RESOLVED
    if before in (None, TicketStatus.NEW) and after == TicketStatus.ASSIGNED:
        return MessageKind.ACCEPTED
    return None


# --- on which channel ---


@dataclass(frozen=True)
class ChannelChoice:
    chosen: tuple[tuple[CustomerChannel, str], ...]  # (channel, address), best first
    why_not: str  # why the other channels were not usable ("sms: no consent; …")


def choose_channels(
    consent: Mapping[str, Any],
    addresses: Mapping[CustomerChannel, str],
    origin: str,
    enabled: frozenset[CustomerChannel],
    fanout: str = "preferred",
) -> ChannelChoice:
    """The channels a message goes out on: the customer consented (``consent[...] is True``),
    has an address there, and the channel is configured. The channel the ticket came from
    first, then ``PREFERENCE``; ``fanout="preferred"`` keeps the first, ``"all"`` every one."""
    first = ORIGIN.get(origin)
    order = ([first] if first else []) + [c for c in PREFERENCE if c != first]
    usable: list[tuple[CustomerChannel, str]] = []
    refused: list[str] = []
    for channel in order:
        if consent.get(CONSENT_KEY[channel]) is not True:
            refused.append(f"{channel.value}: no consent")
        elif not addresses.get(channel):
            refused.append(f"{channel.value}: no address")
        elif channel not in enabled:
            refused.append(f"{channel.value}: not configured")
        else:
            usable.append((channel, addresses[channel]))
    if fanout != "all":
        usable = usable[:1]
    return ChannelChoice(tuple(usable), "; ".join(refused))


# --- when ---


def quiet_until(now: datetime, tz: ZoneInfo, hours: QuietHours | None) -> datetime | None:
    """If ``now`` falls in the region's quiet hours, when they end (UTC); else None."""
    if hours is None:
        return None
    local = now.astimezone(tz)
    t, day = local.time().replace(tzinfo=None), local.date()
    if hours.start < hours.end:  # within one day (13:00–14:00)
        quiet, end_day = hours.start <= t < hours.end, day
    elif t >= hours.start:  # across midnight, evening part (21:00–24:00)
        quiet, end_day = True, day + timedelta(days=1)
    else:  # across midnight, morning part (00:00–08:00)
        quiet, end_day = t < hours.end, day
    if not quiet:
        return None
    return datetime.combine(end_day, hours.end, tzinfo=tz).astimezone(UTC)


# --- in which language, from which template ---


def languages(preferred: str | None) -> list[str]:
    """The customer's language, its primary subtag ("en" for "en-GB"), then the default."""
    wanted = (preferred or DEFAULT_LANGUAGE).strip() or DEFAULT_LANGUAGE
    return list(dict.fromkeys([wanted, wanted.split("-")[0].lower(), DEFAULT_LANGUAGE]))


TemplateKey = tuple[str, str, str, str]  # (ticket_type, kind, language, channel)


def pick_template(
    available: Iterable[TemplateKey], ticket_type: str, kind: str, langs: Sequence[str], channel: str
) -> TemplateKey | None:
    """The most specific template: language first, then the ticket type (or "*"), then the
    channel (or "*")."""
    have = set(available)
    for lang in langs:
        for tt in (ticket_type, ANY):
            for ch in (channel, ANY):
                if (tt, kind, lang, ch) in have:
                    return (tt, kind, lang, ch)
    return None


def eta_text(value: Any, tz: ZoneInfo) -> str:
    """An expected arrival as the customer reads it: local "YYYY-MM-DD HH:MM" (a short text
    that is not a time stays as it is; anything else is dropped)."""
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str) and value.strip():
        try:
            at = datetime.fromisoformat(value.strip())
        except ValueError:
            return value.strip() if len(value.strip()) <= 40 else ""
    else:
        return ""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


# --- the sandbox ---

# name → the fields it has (None: a plain value)
VARIABLES: dict[str, frozenset[str] | None] = {
    "kind": None,
    "ticket": frozenset(TicketView.model_fields),
    "customer": frozenset(PersonView.model_fields),
    "engineer": frozenset(PersonView.model_fields),
    "eta": None,
    "question": None,
    "tracking_url": None,
}
FILTERS = ("default", "d", "upper", "lower", "title", "capitalize", "trim", "truncate", "length", "string")
TESTS = ("defined", "undefined", "none", "string", "number", "eq", "ne", "equalto", "sameas", "in")
# Node types a template may use; anything else (loops, calls, assignments, arithmetic…) is refused.
ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.If,
    nodes.CondExpr,
    nodes.Filter,
    nodes.Test,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.Tuple,
    nodes.List,
    nodes.Keyword,
)
NAME = "<template>"  # the file name Jinja gives a template compiled from a string
MAX_SUBJECT_OUT = 300
MAX_BODY_OUT = 20_000


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.globals.clear()  # no range, cycler, joiner, namespace, lipsum, dict
    env.filters = {name: env.filters[name] for name in FILTERS}
    env.tests = {name: env.tests[name] for name in TESTS}
    return env


ENV = _environment()


@dataclass(frozen=True)
class Problem:
    field: str  # "subject" | "body"
    line: int | None
    msg: str
    type: str


class RenderError(Exception):
    """A saved template did not render (it passed validation: a bug, or a value it did not expect)."""


def _fields(name: str) -> frozenset[str] | None:
    return VARIABLES.get(name)


def _check_node(field: str, node: nodes.Node, out: list[Problem]) -> None:
    line = getattr(node, "lineno", None)

    def bad(msg: str, type_: str) -> None:
        out.append(Problem(field, line, f"line {line}: {msg}", type_))

    if not isinstance(node, ALLOWED_NODES):
        bad(f"{type(node).__name__.lower()} is not allowed in a message template", "template_forbidden")
        for child in node.iter_child_nodes():
            _check_node(field, child, out)
        return
    if isinstance(node, nodes.Name):
        if node.name not in VARIABLES:
            bad(f"unknown variable {node.name!r} (known: {', '.join(VARIABLES)})", "template_unknown_variable")
        return
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        target = node.node
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if not isinstance(target, nodes.Name) or not isinstance(key, str):
            bad("attribute access is allowed only on ticket, customer and engineer", "template_forbidden")
            _check_node(field, target, out)  # and name what it was tried on
            return
        fields = _fields(target.name)
        if target.name not in VARIABLES:
            bad(f"unknown variable {target.name!r} (known: {', '.join(VARIABLES)})", "template_unknown_variable")
        elif fields is None or key not in fields:
            known = ", ".join(sorted(fields)) if fields else "nothing"
            bad(f"{target.name} has no attribute {key!r} (it has: {known})", "template_unknown_attribute")
        return
    if isinstance(node, nodes.Filter | nodes.Test):
        allowed = FILTERS if isinstance(node, nodes.Filter) else TESTS
        what = "filter" if isinstance(node, nodes.Filter) else "test"
        if node.name not in allowed:
            bad(f"{what} {node.name!r} is not allowed (allowed: {', '.join(allowed)})", "template_forbidden")
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            bad(f"*args and **kwargs are not allowed in a {what}", "template_forbidden")
    for child in node.iter_child_nodes():
        _check_node(field, child, out)


def _render_line(exc: BaseException) -> int | None:
    """The template line a render error happened on (Jinja rewrites its traceback so that the
    template's own frames carry the template's line numbers)."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == NAME]
    return lines[-1] if lines else None


@lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    return ENV.from_string(source)


def check_source(field: str, source: str) -> list[Problem]:
    """Syntax and the static rules; an empty list when the source may be rendered."""
    if "\x00" in source:
        return [Problem(field, None, "NUL characters are not allowed", "nul_character")]
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        return [Problem(field, exc.lineno, f"line {exc.lineno}: {exc.message}", "template_syntax")]
    problems: list[Problem] = []
    _check_node(field, tree, problems)
    return problems


def sample_contexts() -> list[RenderContext]:
    """What a template is rendered against at save time: every value present, and the optional
    ones empty (no engineer yet, no ETA, no question, no link)."""
    ticket = TicketView(
        id="T2026121100001", title="3号压缩机过热 Compressor #3 overheating", status="assigned", type="x"
    )
    full = RenderContext(
        kind="on_the_way",
        ticket=ticket,
        customer=PersonView(name="王建国"),
        engineer=PersonView(name="李伟 Li Wei"),
        eta="2026-12-11 15:30",
        question="请问设备的序列号是多少？ What is the serial number?",
        tracking_url="https://ticketflow.example/t/sample-token",
    )
    return [full, RenderContext(kind="accepted", ticket=ticket, customer=PersonView(name="Lin Hua"))]


def validate(subject: str, body: str) -> list[Problem]:
    """Every problem of a template, each with its line: syntax, names and attributes outside
    the context, forbidden constructs, then a render against the sample contexts."""
    problems = check_source("subject", subject) + check_source("body", body)
    if problems:
        return problems
    for context in sample_contexts():
        try:
            render(subject, body, context)
        except RenderError as exc:
            cause = exc.__cause__ or exc
            field = "subject" if str(exc).startswith("subject") else "body"
            line = _render_line(cause)
            where = f"line {line}: " if line else ""
            return [Problem(field, line, f"{where}{cause}", "template_render")]
    return []


def _one(field: str, source: str, values: dict[str, Any]) -> str:
    try:
        return _compile(source).render(values)
    except Exception as exc:  # noqa: BLE001 - any failure of a render is the template's
        raise RenderError(f"{field}: {type(exc).__name__}: {exc}") from exc


def render(subject: str, body: str, context: RenderContext) -> tuple[str, str]:
    """The subject (one line) and body of a message. Raises ``RenderError``."""
    values = context.model_dump()
    out_subject = " ".join(_one("subject", subject, values).split()) if subject else ""
    out_body = _one("body", body, values).strip()
    if len(out_subject) > MAX_SUBJECT_OUT:
        out_subject = out_subject[: MAX_SUBJECT_OUT - 1] + "…"
    if len(out_body) > MAX_BODY_OUT:
        raise RenderError(f"body: {len(out_body)} characters rendered (at most {MAX_BODY_OUT})")
    return out_subject, out_body
