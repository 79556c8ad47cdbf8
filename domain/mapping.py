"""Business-system events through a source's mapping rules: which rule an event meets (its type,
then its CEL condition over ``event``), the values the rule picks from it by JSON path, the
de-duplication key, and everything wrong with a mapping when it is saved. Pure: no I/O.

Value sources. Wherever a rule takes a value, a string starting with ``$`` is a JSON path into
the event (``$.data.serial``; jsonpath-ng's syntax, no filters) and anything else is a constant.
A title or description is a small template: ``"Alarm {$.data.code} on {$.data.serial}"``.

Conditions are CEL (cel-python, as template conditions: ``domain/expressions.py``) over one
name, ``event``: the whole event (``event.type``, ``event.data.amount > 1000``,
``has(event.data.vip) && event.data.vip``). JSON integers are CEL ints, fractions doubles. They
are cost-checked like template conditions and may not iterate (``all``/``exists``/``map``/
``filter``): an event's lists are the sender's to size, and cel-python walks them at about 5 µs
an item — a list of a few thousand items nested twice would hold a request for minutes.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.jsonpath import Child, Fields, Index, JSONPath, Root
from jsonpath_ng.parser import parse

from domain.expressions import ExpressionError, cost_problem, names_in
from domain.forms import check_value
from models.integrations import FieldSource, MappingSpec, Rule
from models.template import FieldType, FormField, TemplateSpec

Loc = tuple[str | int, ...]
MAX_PATH = 200
MAX_KEY_VALUE_SHOWN = 200
_PLACEHOLDER = re.compile(r"\{(\$[^{}]*)\}")
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_ENV = celpy.Environment()
# Composite form values a rule may assemble from several sources, and their parts.
_PARTS = {FieldType.MONEY: ({"amount", "currency"}, set()), FieldType.LOCATION: ({"lat", "lon"}, {"address"})}


@dataclass(frozen=True)
class Problem:
    loc: Loc
    msg: str
    type: str = "mapping_invalid"


class MappingError(ValueError):
    """A JSON path that does not parse, or a condition that cannot be evaluated."""


# --- JSON paths ---


def is_path(source: object) -> bool:
    return isinstance(source, str) and source.startswith("$")


@lru_cache(maxsize=4096)
def compiled_path(text: str) -> JSONPath:
    """The parsed path, rooted at ``$``; ``MappingError`` when it is not one."""
    if len(text) > MAX_PATH:
        raise MappingError(f"a JSON path is at most {MAX_PATH} characters")
    try:
        path = parse(text)
    except (JSONPathError, Exception) as exc:  # jsonpath-ng's lexer raises plain Exceptions too
        raise MappingError(f"not a JSON path: {str(exc)[:200]}") from None
    node = path
    while hasattr(node, "left"):  # a.b, a..b, a where b…: the leftmost is where it starts
        node = node.left
    if not isinstance(node, Root) or not text.startswith("$"):
        raise MappingError("a JSON path starts at the event's root: $.data.…")
    return path


def path_problem(text: str) -> str | None:
    try:
        compiled_path(text)
    except MappingError as exc:
        return str(exc)
    return None


def pick(text: str, event: Any) -> Any:
    """The value at ``text`` in ``event``: None when absent, a list when the path matches several."""
    found = [m.value for m in compiled_path(text).find(event)]
    if not found:
        return None
    return found[0] if len(found) == 1 else found


def value_of(source: Any, event: Any) -> Any:
    """A value source: a JSON path's value, else the constant itself."""
    return pick(source, event) if is_path(source) else source


def path_loc(text: str) -> Loc:
    """Where a plain path (fields and indexes) points, as a 422 ``loc`` (``$.data.serial`` →
    ``("data", "serial")``); any other path as itself."""
    parts: list[str | int] = []
    node = compiled_path(text)
    while isinstance(node, Child):
        right = node.right
        if isinstance(right, Fields) and len(right.fields) == 1:
            parts.append(right.fields[0])
        elif isinstance(right, Index) and len(right.indices) == 1:
            parts.append(right.indices[0])
        else:
            return (text,)
        node = node.left
    return tuple(reversed(parts)) if isinstance(node, Root) else (text,)


def render(template: str, event: Any) -> str:
    """A title or description: a JSON path's value, or the text with each ``{$…}`` replaced."""
    if is_path(template) and "{" not in template:
        value = pick(template, event)
        return "" if value is None else _text(value)
    return _PLACEHOLDER.sub(lambda m: _text(pick(m.group(1), event)), template)


def template_paths(template: str) -> list[str]:
    if is_path(template) and "{" not in template:
        return [template]
    return _PLACEHOLDER.findall(template)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


# --- conditions ---


@lru_cache(maxsize=1024)
def _program(text: str) -> Any:
    return _ENV.program(_ENV.compile(text))


def condition_problem(text: str) -> str | None:
    """Why a rule's condition cannot be used (syntax, cost, a name other than ``event``, an
    iteration), or None. Never evaluates it."""
    try:
        if (problem := cost_problem(text)) is not None:
            return problem
        unknown = [n for n in names_in(text) if n != "event"]
    except ExpressionError as exc:
        return exc.message
    if unknown:
        return f"unknown name(s): {', '.join(unknown)}; a condition reads only `event`"
    for t in _ENV.compile(text).iter_subtrees():
        if t.data == "member_dot_arg" and len(t.children) >= 2 and str(t.children[1]) in _MACROS:
            return f"{t.children[1]}() iterates over the event's data: not allowed in a mapping condition"
    return None


def _cel(value: Any) -> Any:
    if isinstance(value, Decimal):
        return celtypes.DoubleType(float(value))
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(str(k)): _cel(v) for k, v in value.items()})
    if isinstance(value, list):
        return celtypes.ListType([_cel(v) for v in value])
    return json_to_cel(value)


def condition_holds(text: str, event: Mapping[str, Any]) -> bool:
    """Evaluate a (checked) condition; ``MappingError`` when it cannot be (a missing key read
    without ``has()``, values of different types compared) or gives no boolean."""
    try:
        result = _program(text).evaluate({"event": _cel(event)})
    except celpy.CELEvalError as exc:  # type: ignore[attr-defined]  # exported without __all__
        raise MappingError(str(exc.args[0] if exc.args else exc)[:200]) from None
    if isinstance(result, celpy.CELEvalError):  # type: ignore[attr-defined]
        raise MappingError(str(result.args[0] if result.args else result)[:200])
    if not isinstance(result, celtypes.BoolType):
        raise MappingError("the condition gives no boolean")
    return bool(result)


@dataclass(frozen=True)
class Match:
    index: int
    rule: Rule


def first_match(spec: MappingSpec, event: Mapping[str, Any]) -> tuple[Match | None, list[str]]:
    """The first rule whose ``event_type`` is the event's and whose condition holds; and why each
    rule of that type whose condition could not be evaluated was passed over."""
    skipped: list[str] = []
    for i, rule in enumerate(spec.rules):
        if rule.event_type != event.get("type"):
            continue
        if rule.condition is None:
            return Match(i, rule), skipped
        try:
            if condition_holds(rule.condition, event):
                return Match(i, rule), skipped
        except MappingError as exc:
            skipped.append(f"{rule.name}: {exc}")
    return None, skipped


# --- de-duplication ---


def dedup_values(rule: Rule, event: Any) -> list[Any]:
    return [pick(path, event) for path in rule.dedup.key]


def dedup_key(rule_name: str, values: list[Any]) -> str:
    """sha256 hex of the rule and its key values (canonical JSON): the same problem, the same key."""
    canonical = json.dumps([rule_name, values], sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def shown_values(values: list[Any]) -> list[Any]:
    """Key values fit to store and show: scalars as they are (strings cut), anything else as text."""
    out: list[Any] = []
    for v in values:
        if v is None or isinstance(v, bool | int):
            out.append(v)
        else:
            out.append(_text(v)[:MAX_KEY_VALUE_SHOWN])
    return out


# --- form values ---


def form_value(field: FormField, source: FieldSource, event: Any) -> Any:
    """The value a rule gives ``field``: picked or constant, composite parts assembled, numbers
    as the form wants them (decimal strings; lat/lon as numbers)."""
    if isinstance(source, dict):
        parts = {k: value_of(v, event) for k, v in source.items()}
        value: Any = {k: v for k, v in parts.items() if v is not None}
    else:
        value = value_of(source, event)
    return _for_form(field.type, value)


def _for_form(ftype: FieldType, value: Any) -> Any:
    if value is None:
        return None
    if ftype == FieldType.LOCATION and isinstance(value, dict):
        return {k: float(v) if isinstance(v, Decimal) and k in ("lat", "lon") else v for k, v in value.items()}
    if ftype == FieldType.MONEY and isinstance(value, dict) and isinstance(value.get("amount"), Decimal | int):
        return {**value, "amount": str(value["amount"])}
    if ftype == FieldType.NUMBER and isinstance(value, Decimal):
        return str(value)
    if ftype in (FieldType.TEXT, FieldType.LONG_TEXT, FieldType.PHONE) and isinstance(value, int | Decimal):
        return str(value)
    return value


# --- checking a mapping when it is saved ---


def spec_problems(
    spec: MappingSpec, templates: Mapping[str, TemplateSpec | None], regions: set[str], channel: str
) -> list[Problem]:
    """Everything wrong with ``spec``, each with its location: paths that do not parse, conditions
    that cannot be used, unknown templates, regions and form fields, required fields left unmapped.
    ``templates``: the latest version of each template a rule names (None: no such template);
    ``channel``: the channel the source raises tickets through."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, rule in enumerate(spec.rules):
        at: Loc = ("rules", i)
        if rule.name in seen:
            problems.append(Problem((*at, "name"), f"another rule is named {rule.name!r}", "duplicate"))
        seen.add(rule.name)
        problems += _rule_paths(rule, at)
        if rule.condition is not None and (why := condition_problem(rule.condition)) is not None:
            problems.append(Problem((*at, "condition"), why, "condition_invalid"))
        if rule.region is not None and not is_path(rule.region) and rule.region not in regions:
            problems.append(Problem((*at, "region"), f"unknown region {rule.region!r}", "unknown_region"))
        if rule.region is None and rule.asset is None and rule.customer is None:
            problems.append(
                Problem((*at, "region"), "name a region, or a customer or asset the ticket takes it from", "missing")
            )
        if rule.order is not None and rule.customer is None and rule.asset is None:
            problems.append(
                Problem((*at, "order"), "an order belongs to a customer: map the customer (or the asset)", "missing")
            )
        template = templates.get(rule.template)
        if template is None:
            problems.append(Problem((*at, "template"), f"unknown template {rule.template!r}", "unknown_template"))
            continue
        if template.channels and channel not in template.channels:
            problems.append(
                Problem(
                    (*at, "template"),
                    f"{rule.template} tickets are raised through {', '.join(template.channels)}, not {channel}",
                    "channel_not_allowed",
                )
            )
        problems += _field_problems(rule, template, at)
    return problems


def _rule_paths(rule: Rule, at: Loc) -> list[Problem]:
    """(location, path) of every JSON path the rule uses, checked."""
    paths: list[tuple[Loc, str]] = [((*at, "dedup", "key", k), p) for k, p in enumerate(rule.dedup.key)]
    for name in ("region", "external_ref"):
        if isinstance(value := getattr(rule, name), str) and is_path(value):
            paths.append(((*at, name), value))
    for name in ("title", "description"):
        paths += [((*at, name), p) for p in template_paths(getattr(rule, name) or "")]
    if rule.customer is not None:
        paths.append(((*at, "customer", "path"), rule.customer.path))
    if rule.asset is not None:
        paths.append(((*at, "asset", "serial"), rule.asset.serial))
    if rule.order is not None:
        for name, value in rule.order.model_dump(exclude_none=True).items():
            if name == "summary":
                paths += [((*at, "order", name), p) for p in template_paths(value)]
            elif isinstance(value, str) and is_path(value):
                paths.append(((*at, "order", name), value))
    for field, source in rule.fields.items():
        parts = source.items() if isinstance(source, dict) else [(None, source)]
        for part, value in parts:
            if isinstance(value, str) and is_path(value):
                paths.append(((*at, "fields", field, *([part] if part else [])), value))
    return [Problem(loc, why, "path_invalid") for loc, p in paths if (why := path_problem(p)) is not None]


def _field_problems(rule: Rule, template: TemplateSpec, at: Loc) -> list[Problem]:
    problems: list[Problem] = []
    for name, source in rule.fields.items():
        loc = (*at, "fields", name)
        f = template.field(name)
        if f is None:
            problems.append(Problem(loc, f"{rule.template} has no form field {name!r}", "unknown_field"))
            continue
        if f.editable_by and "channel" not in f.editable_by:
            problems.append(Problem(loc, f"only {', '.join(f.editable_by)} may set {name}", "not_editable"))
            continue
        if isinstance(source, dict):
            required, optional = _PARTS.get(f.type, (None, set()))
            if required is None:
                problems.append(Problem(loc, f"{name} is a {f.type.value}: map it to one value", "not_composite"))
            elif not required <= set(source) or set(source) - required - optional:
                wanted = ", ".join(sorted(required)) + (f" (and {', '.join(sorted(optional))})" if optional else "")
                problems.append(Problem(loc, f"{name} is a {f.type.value}: map {wanted}", "parts"))
            elif not any(is_path(v) for v in source.values()) and (why := check_value(f, source)) is not None:
                problems.append(Problem(loc, why, "invalid_value"))
        elif not is_path(source) and (why := check_value(f, _for_form(f.type, source))) is not None:
            problems.append(Problem(loc, why, "invalid_value"))
    filled = set(rule.fields) | (set(template.from_asset) if rule.asset is not None else set())
    for f in template.fields:
        if f.required and f.default is None and f.name not in filled:
            problems.append(
                Problem((*at, "fields"), f"{rule.template} requires {f.name}: map it", "required_field_unmapped")
            )
    return problems
