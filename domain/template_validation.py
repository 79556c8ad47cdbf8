"""Everything wrong with a template, each problem with its JSON path — checked when it is saved.

References (nodes, fields, activities), reachability from ``start``, a path to an end from
every node, gateways with a default, parallel branches that join, expressions that parse,
name known fields and compare values of the right types.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.expressions import TICKET_VARS, check
from domain.forms import check_value, pattern_problem
from models.template import BUILTIN_EVENTS, FieldType, TemplateSpec

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    msg: str
    type: str = "template_invalid"


@dataclass(frozen=True)
class ActivitySignature:
    """What validation needs to know of a catalog activity."""

    inputs: frozenset[str]
    required_inputs: frozenset[str]
    outputs: frozenset[str] | None = None  # None: unknown (not a Pydantic model)


@dataclass
class _Ctx:
    spec: TemplateSpec
    activities: Mapping[str, ActivitySignature]
    problems: list[Problem] = field(default_factory=list)

    def add(self, loc: Loc, msg: str, type_: str = "template_invalid") -> None:
        self.problems.append(Problem(loc, msg, type_))


def _edges(node: Any) -> Iterator[tuple[str, str]]:
    """(attribute path, target node id) of every reference a node makes."""
    for attr in ("next", "on_reject", "default", "on_insufficient", "on_over_budget"):
        target = getattr(node, attr, None)
        if isinstance(target, str):
            yield attr, target
    for i, c in enumerate(getattr(node, "conditions", []) or []):
        yield f"conditions.{i}.to", c.to
    for i, b in enumerate(getattr(node, "branches", []) or []):
        yield f"branches.{i}.start", b.start


def _loc(i: int, attr: str) -> Loc:
    return ("nodes", i, *(int(p) if p.isdigit() else p for p in attr.split(".")))


def validate_template(spec: TemplateSpec, activities: Mapping[str, ActivitySignature]) -> list[Problem]:
    ctx = _Ctx(spec, activities)
    _fields(ctx)
    ids = _node_ids(ctx)
    if spec.start not in ids:
        ctx.add(("start",), f"unknown node {spec.start!r}")
    for i, node in enumerate(spec.nodes):
        for attr, target in _edges(node):
            if target not in ids:
                ctx.add(_loc(i, attr), f"unknown node {target!r}")
        _node_rules(ctx, i, node, ids)
    if not any(n.type == "end" for n in spec.nodes):
        ctx.add(("nodes",), "a template needs at least one end node")
    if not ctx.problems:  # the graph checks need sound references
        _graph(ctx)
    for i, rule in enumerate(spec.classification):
        if rule.when:
            _expr(ctx, ("classification", i, "when"), rule.when)
    _events(ctx)
    _from_asset(ctx)
    return ctx.problems


# What each asset attribute fills: a text-like field, or a location field for the site.
_ASSET_FIELD_TYPES = {
    "serial": (FieldType.TEXT,),
    "model": (FieldType.TEXT,),
    "site_address": (FieldType.TEXT, FieldType.LONG_TEXT),
    "site": (FieldType.LOCATION,),
}


def _from_asset(ctx: _Ctx) -> None:
    """Fields filled from the asset exist and can hold what they get."""
    for name, attribute in ctx.spec.from_asset.items():
        f = ctx.spec.field(name)
        if f is None:
            ctx.add(("from_asset", name), f"unknown field {name!r}")
        elif f.type not in _ASSET_FIELD_TYPES[attribute]:
            ctx.add(("from_asset", name), f"{name!r} is a {f.type.value} field; the asset's {attribute} does not fit")


SENDER_KINDS = ("requester", "channel", "assignee")


def _events(ctx: _Ctx) -> None:
    """Declared events: unique names, senders of a known kind, fields that exist."""
    seen: set[str] = set()
    for i, event in enumerate(ctx.spec.events or []):
        if event.name in seen:
            ctx.add(("events", i, "name"), f"duplicate event {event.name!r}")
        seen.add(event.name)
        for j, sender in enumerate(event.senders):
            kind, _, role = sender.partition(":")
            if not (sender in SENDER_KINDS or (kind == "role" and role)):
                ctx.add(
                    ("events", i, "senders", j),
                    f"unknown sender {sender!r}: requester, channel, assignee or role:<name>",
                )
        for j, name in enumerate(event.fields):
            _known_field(ctx, ("events", i, "fields", j), name)


def _fields(ctx: _Ctx) -> None:
    seen: set[str] = set()
    for i, f in enumerate(ctx.spec.fields):
        if f.name in seen:
            ctx.add(("fields", i, "name"), f"duplicate field {f.name!r}")
        if f.name in TICKET_VARS or f.name == "ticket_id":
            ctx.add(("fields", i, "name"), f"{f.name!r} is a ticket attribute; pick another name")
        seen.add(f.name)
        if f.type in (FieldType.ENUM, FieldType.MULTI_ENUM) and not f.options:
            ctx.add(("fields", i, "options"), "an enum field needs options")
        if f.pattern and (msg := pattern_problem(f.pattern)):
            ctx.add(("fields", i, "pattern"), msg)
        elif f.default is not None and (msg := check_value(f, f.default)):
            ctx.add(("fields", i, "default"), f"default {msg}")


def _node_ids(ctx: _Ctx) -> set[str]:
    ids: set[str] = set()
    for i, node in enumerate(ctx.spec.nodes):
        if node.id in ids:
            ctx.add(("nodes", i, "id"), f"duplicate node id {node.id!r}")
        ids.add(node.id)
    return ids


def _known_field(ctx: _Ctx, loc: Loc, name: str) -> None:
    if ctx.spec.field(name) is None:
        ctx.add(loc, f"unknown field {name!r}")


def _types(ctx: _Ctx) -> dict[str, FieldType]:
    return {**TICKET_VARS, "ticket_id": FieldType.TEXT, **{f.name: f.type for f in ctx.spec.fields}}


def _expr(ctx: _Ctx, loc: Loc, text: str, want_bool: bool = True) -> None:
    error = check(text, _types(ctx), want_bool=want_bool)
    if error is not None:
        ctx.add(loc, f"expression {text!r}: {error.message}", f"expression_{error.kind}")


def _one_of(ctx: _Ctx, loc: Loc, rule: Any, names: tuple[str, ...]) -> None:
    if sum(getattr(rule, n) is not None for n in names) != 1:
        ctx.add(loc, f"set exactly one of {', '.join(names)}")


def _node_rules(ctx: _Ctx, i: int, node: Any, ids: set[str]) -> None:
    kind = node.type
    if kind == "task":
        _one_of(ctx, ("nodes", i, "assignee"), node.assignee, ("user", "role", "group"))
        for j, name in enumerate(node.form):
            _known_field(ctx, ("nodes", i, "form", j), name)
        for j, name in enumerate(node.required):
            _known_field(ctx, ("nodes", i, "required", j), name)
            if name not in node.form and ctx.spec.field(name) is not None:
                ctx.add(("nodes", i, "required", j), f"{name!r} is required here but not in this task's form")
        if node.dispatch is not None:
            _dispatch(ctx, i, node)
        _on_site(ctx, i, node)
    elif kind == "approval":
        for j, level in enumerate(node.levels):
            _one_of(ctx, ("nodes", i, "levels", j, "approvers"), level.approvers, ("user", "role", "manager_of"))
            mo = level.approvers.manager_of
            if mo and mo != "requester":
                _known_field(ctx, ("nodes", i, "levels", j, "approvers", "manager_of"), mo)
            if level.quorum == "n_of_m" and not level.n:
                ctx.add(("nodes", i, "levels", j, "n"), "n_of_m quorum needs n")
            if level.when:
                _expr(ctx, ("nodes", i, "levels", j, "when"), level.when)
        for j, name in enumerate(node.decides or []):
            _known_field(ctx, ("nodes", i, "decides", j), name)
    elif kind == "gateway":
        if node.default is None:
            ctx.add(("nodes", i, "default"), "a gateway needs a default branch")
        for j, c in enumerate(node.conditions):
            _expr(ctx, ("nodes", i, "conditions", j, "when"), c.when)
    elif kind == "wait":
        if node.duration is None and node.signal is None:
            ctx.add(("nodes", i), "a wait needs a duration, a signal, or both")
        declared = ctx.spec.events is None or any(e.name == node.signal for e in ctx.spec.events or [])
        if node.signal and not declared and node.signal not in {e.name for e in BUILTIN_EVENTS}:
            ctx.add(
                ("nodes", i, "signal"), f"the event {node.signal!r} is not declared in events: nobody could send it"
            )
    elif kind == "action":
        _action(ctx, i, node)
    elif kind == "reserve_parts":
        for attr in ("sku_field", "quantity_field", "location_field"):
            if getattr(node, attr):
                _known_field(ctx, ("nodes", i, attr), getattr(node, attr))
        if not node.parts and not (node.sku_field and node.quantity_field):
            ctx.add(("nodes", i, "parts"), "list parts, or name a sku_field and a quantity_field")
    elif kind == "consume_parts":
        target = next((n for n in ctx.spec.nodes if n.id == node.reservation), None)
        if target is None or target.type != "reserve_parts":
            ctx.add(("nodes", i, "reservation"), f"{node.reservation!r} is not a reserve_parts node")
        if node.used_field:
            _known_field(ctx, ("nodes", i, "used_field"), node.used_field)
    elif kind == "settle":
        if node.minutes_field:
            _known_field(ctx, ("nodes", i, "minutes_field"), node.minutes_field)
        if bool(node.hourly_service) != bool(node.minutes_field):
            ctx.add(("nodes", i, "minutes_field"), "an hourly_service needs a minutes_field, and the other way round")
        if not node.services and not node.hourly_service and not node.quoted:
            ctx.add(("nodes", i, "services"), "name the services to price")
        for name, when in node.pricing_conditions.items():
            _expr(ctx, ("nodes", i, "pricing_conditions", name), when)
        for code, name in node.quoted.items():
            f = ctx.spec.field(name)
            if f is None or f.type != FieldType.MONEY:
                ctx.add(("nodes", i, "quoted", code), f"{name!r} is not a money field of this template")
        if node.location_field:
            f = ctx.spec.field(node.location_field)
            if f is None or f.type != FieldType.LOCATION:
                ctx.add(("nodes", i, "location_field"), f"{node.location_field!r} is not a location field")


def _on_site(ctx: _Ctx, i: int, node: Any) -> None:
    """A task's check-in site is a location field."""
    if node.on_site is None:
        return
    f = ctx.spec.field(node.on_site.site_field)
    if f is None or f.type != FieldType.LOCATION:
        ctx.add(("nodes", i, "on_site", "site_field"), f"{node.on_site.site_field!r} is not a location field")


def _dispatch(ctx: _Ctx, i: int, node: Any) -> None:
    d, loc = node.dispatch, ("nodes", i, "dispatch")
    if node.assignee.user:
        ctx.add((*loc,), "dispatch picks among a role or group: not with a fixed user")
    for attr, want in (("location_field", FieldType.LOCATION), ("tier_field", None)):
        name = getattr(d, attr)
        if name:
            f = ctx.spec.field(name)
            if f is None:
                ctx.add((*loc, attr), f"unknown field {name!r}")
            elif want is not None and f.type != want:
                ctx.add((*loc, attr), f"{name!r} is a {f.type.value} field, not a {want.value} field")
    if d.max_distance_km is not None and not d.location_field:
        ctx.add((*loc, "max_distance_km"), "a distance limit needs a location_field")


def _action(ctx: _Ctx, i: int, node: Any) -> None:
    sig = ctx.activities.get(node.activity)
    if sig is None:
        ctx.add(("nodes", i, "activity"), f"no registered activity named {node.activity!r}")
        return
    for name, expr in node.inputs.items():
        if name not in sig.inputs:
            ctx.add(("nodes", i, "inputs", name), f"{node.activity} takes no input {name!r}")
        _expr(ctx, ("nodes", i, "inputs", name), expr, want_bool=False)
    for name in sorted(sig.required_inputs - set(node.inputs)):
        ctx.add(("nodes", i, "inputs"), f"{node.activity} needs input {name!r}")
    for target, out in node.outputs.items():
        _known_field(ctx, ("nodes", i, "outputs", target), target)
        if sig.outputs is not None and out not in sig.outputs:
            ctx.add(("nodes", i, "outputs", target), f"{node.activity} has no output {out!r}")


def _graph(ctx: _Ctx) -> None:
    spec = ctx.spec
    index = {n.id: i for i, n in enumerate(spec.nodes)}
    succ = {n.id: [t for _, t in _edges(n)] for n in spec.nodes}
    reached = _reach(spec.start, succ)
    for n in spec.nodes:
        if n.id not in reached:
            ctx.add(("nodes", index[n.id]), f"node {n.id!r} cannot be reached from start")
    pred: dict[str, list[str]] = {n.id: [] for n in spec.nodes}
    for src, targets in succ.items():
        for t in targets:
            pred[t].append(src)
    ends = [n.id for n in spec.nodes if n.type == "end"]
    can_end: set[str] = set()
    for e in ends:
        can_end |= _reach(e, pred)
    for n in spec.nodes:
        if n.id in reached and n.id not in can_end:
            ctx.add(("nodes", index[n.id]), f"node {n.id!r} has no path to an end node")
    for n in spec.nodes:
        if n.type == "parallel":
            for j, b in enumerate(n.branches):
                if not _joins(b.start, n.next, succ, {x.id for x in spec.nodes if x.type == "end"}):
                    ctx.add(("nodes", index[n.id], "branches", j), f"branch {b.name!r} never joins at {n.next!r}")


def _reach(start: str, succ: Mapping[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in succ.get(todo.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _joins(start: str, join: str, succ: Mapping[str, list[str]], ends: set[str]) -> bool:
    """Every path from ``start`` reaches ``join`` before an end node."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == join or node in seen:
            continue
        if node in ends:
            return False
        seen.add(node)
        todo += succ.get(node, [])
    return True
