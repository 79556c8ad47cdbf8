"""Spawn nodes, checked when a template is saved (docs/linked-tickets.md).

Without the published templates (``published=None``): each child's form values are expressions
over the parent that parse, name known fields and cost little, and no child is of the parent's
own type. With them (the newest spec of every published ticket type): each child's ticket type
exists, every value it sets is a field of the child's template, of a type that can take the
parent field named, the child's required fields are all given, and no chain of spawns comes
back to the template itself (a ticket opening itself, at any depth, would never end).
"""

from collections.abc import Mapping

from domain.expressions import TICKET_VARS, check
from domain.template_validation import Loc, Problem
from models.template import FieldType, SpawnNode, TemplateSpec

# A child's text field takes any of these parent fields as they are.
_TEXT_LIKE = frozenset({FieldType.TEXT, FieldType.LONG_TEXT, FieldType.ENUM, FieldType.PHONE, FieldType.EMAIL})


def spawn_problems(spec: TemplateSpec, published: Mapping[str, TemplateSpec] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    types = {**TICKET_VARS, "ticket_id": FieldType.TEXT, **{f.name: f.type for f in spec.fields}}
    for i, node in enumerate(spec.nodes):
        if not isinstance(node, SpawnNode):
            continue
        for j, child in enumerate(node.children):
            loc: Loc = ("nodes", i, "children", j)
            if child.ticket_type == spec.key:
                problems.append(Problem((*loc, "ticket_type"), f"{spec.key} tickets cannot open {spec.key} tickets"))
                continue
            for name, expr in child.fields.items():
                if (error := check(expr, types, want_bool=False)) is not None:
                    msg = f"expression {expr!r}: {error.message}"
                    problems.append(Problem((*loc, "fields", name), msg, f"expression_{error.kind}"))
            if published is not None:
                problems += _against_child(spec, child.ticket_type, child.fields, published, loc, types)
        if published is not None and (cycle := _cycle(spec, node, published)):
            problems.append(Problem(("nodes", i), "spawns come back to this template: " + " → ".join(cycle)))
    return problems


def _against_child(
    spec: TemplateSpec,
    ticket_type: str,
    values: Mapping[str, str],
    published: Mapping[str, TemplateSpec],
    loc: Loc,
    types: Mapping[str, FieldType],
) -> list[Problem]:
    target = published.get(ticket_type)
    if target is None:
        return [Problem((*loc, "ticket_type"), f"unknown ticket type {ticket_type!r}: publish it first")]
    problems: list[Problem] = []
    for name, expr in values.items():
        field = target.field(name)
        if field is None:
            problems.append(Problem((*loc, "fields", name), f"{ticket_type} has no field {name!r}"))
            continue
        given = types.get(expr.strip())  # a parent field (or attribute) named alone: passed as stored
        if given is not None and not _fits(given, field.type):
            msg = f"{expr.strip()!r} is a {given.value} field; {ticket_type}'s {name!r} is a {field.type.value} field"
            problems.append(Problem((*loc, "fields", name), msg))
    missing = [f.name for f in target.fields if f.required and f.default is None and f.name not in values]
    if missing:
        problems.append(Problem((*loc, "fields"), f"{ticket_type} requires {', '.join(missing)}: give a value"))
    return problems


def _fits(given: FieldType, wanted: FieldType) -> bool:
    if given == wanted:
        return True
    if wanted == FieldType.LONG_TEXT:
        return given in _TEXT_LIKE
    return wanted == FieldType.TEXT and given in _TEXT_LIKE - {FieldType.LONG_TEXT}


def _cycle(spec: TemplateSpec, node: SpawnNode, published: Mapping[str, TemplateSpec]) -> list[str] | None:
    """The chain of ticket types from this template through ``node``'s children back to it, if any."""
    specs = {**published, spec.key: spec}

    def spawned(key: str) -> list[str]:
        found = specs.get(key)
        if found is None:
            return []
        kinds = [c.ticket_type for n in found.nodes if isinstance(n, SpawnNode) for c in n.children]
        return list(dict.fromkeys(kinds))

    start = list(dict.fromkeys(c.ticket_type for c in node.children if c.ticket_type != spec.key))
    todo: list[list[str]] = [[spec.key, t] for t in start]
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        last = path[-1]
        if last == spec.key:
            return path
        if last in seen:
            continue
        seen.add(last)
        todo += [[*path, nxt] for nxt in spawned(last)]
    return None
