"""Template conditions as CEL (Common Expression Language) via cel-python — never ``eval``.

Names in an expression are the template's form fields plus the ticket attributes in
``TICKET_VARS``. Money and numbers are compared as CEL doubles (exact for the amounts and
thresholds a template compares: up to 15 significant digits); a missing value reads as its
type's zero (0, "", false, []), so ``amount > 100000`` is simply false when no amount is given.

Deterministic and free of I/O: the workflow evaluates gateways and approval thresholds with it.

What an expression may cost is checked when the template is saved (``check``): at most
``MAX_LENGTH`` characters and ``MAX_NODES`` syntax nodes, nesting at most ``MAX_NESTING`` deep,
comprehensions (all/exists/exists_one/map/filter) at most ``MAX_COMPREHENSIONS`` deep, and
``duration()``/``timestamp()`` only on a short, well-formed string literal — cel-python parses
their argument with a backtracking regular expression (``duration(title)`` with a title of 26
characters takes seconds, 4x more per 2 more). ``matches()`` runs on re2: linear time.
"""

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

import celpy
import re2
from celpy import celtypes
from lark import Token, Tree

from models.template import FieldType

TICKET_VARS: dict[str, FieldType] = {
    "priority": FieldType.TEXT,
    "channel": FieldType.TEXT,
    "region": FieldType.TEXT,
    "ticket_type": FieldType.TEXT,
    "title": FieldType.TEXT,
    "description": FieldType.TEXT,
}

_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_ENV = celpy.Environment()

MAX_LENGTH = 1_000
MAX_NODES = 200  # operators, calls, names and literals (not the grammar's pass-through levels)
MAX_NESTING = 12  # parentheses, lists, maps and call arguments inside one another
MAX_COMPREHENSIONS = 2
# duration('1h30m') and timestamp('2026-01-01T08:00:00+08:00'): the literals they accept.
_PARSED_LITERALS = {
    "duration": re2.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|m|s|ms|us|µs|ns|d))+"),
    "timestamp": re2.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"),
}
MAX_PARSED_LITERAL = 40


class ExpressionError(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "syntax" | "unknown_name" | "type" | "cost"
        self.message = message


@lru_cache(maxsize=4096)
def _compiled(text: str) -> tuple[Tree[Any], Any]:
    try:
        ast = _ENV.compile(text)
    except celpy.CELParseError as exc:  # type: ignore[attr-defined]  # celpy exports it without __all__
        raise ExpressionError("syntax", f"does not parse: {str(exc).splitlines()[0]}") from None
    return ast, _ENV.program(ast)


def _is_pass_through(t: Tree[Any]) -> bool:
    return len(t.children) == 1 and not isinstance(t.children[0], Token)


def _string_literal(t: Tree[Any]) -> str | None:
    """The value of a plain quoted string literal that ``t`` is (through pass-through levels)."""
    while _is_pass_through(t):
        t = t.children[0]
    if t.data != "literal" or len(t.children) != 1:
        return None
    token = str(t.children[0])
    if len(token) >= 2 and token[0] in "'\"" and token[-1] == token[0] and not token.startswith(token[0] * 3):
        return token[1:-1]
    return None


def _parsed_call_problem(name: str, args: Any) -> str | None:
    shape = {"duration": "duration('1h30m')", "timestamp": "timestamp('2026-01-01T08:00:00+08:00')"}[name]
    exprs = args.children if isinstance(args, Tree) and args.data == "exprlist" else []
    value = _string_literal(exprs[0]) if len(exprs) == 1 else None
    if value is None or len(value) > MAX_PARSED_LITERAL or not _PARSED_LITERALS[name].fullmatch(value):
        return f"{name}() takes only a short, well-formed string literal, like {shape}"
    return None


def cost_problem(text: str) -> str | None:
    """Why evaluating ``text`` could cost too much (refused when the template is saved), or None.
    Never evaluates anything."""
    if len(text) > MAX_LENGTH:
        return f"is {len(text)} characters long; at most {MAX_LENGTH}"
    ast, _ = _compiled(text)
    nodes = 0
    todo: list[tuple[Tree[Any], int, int]] = [(ast, 0, 0)]  # (subtree, nesting, comprehensions around it)
    while todo:
        t, nesting, loops = todo.pop()
        if t.data == "expr":
            nesting += 1
            if nesting > MAX_NESTING:
                return f"nests more than {MAX_NESTING} levels deep"
        if not _is_pass_through(t):
            nodes += 1
            if nodes > MAX_NODES:
                return f"has more than {MAX_NODES} nodes; split it or simplify it"
        name, args = None, None
        if t.data == "ident_arg":
            name, args = str(t.children[0]), t.children[1] if len(t.children) > 1 else None
        elif t.data == "member_dot_arg" and len(t.children) >= 2:
            name = str(t.children[1])
            if name in _PARSED_LITERALS:
                return f"call {name}() as a function on a literal, e.g. {name}('…'), not as a method"
            if name in _MACROS and loops + 1 > MAX_COMPREHENSIONS:
                return f"comprehensions (all, exists, map, filter) nested more than {MAX_COMPREHENSIONS} deep"
        if name in _PARSED_LITERALS and t.data == "ident_arg" and (problem := _parsed_call_problem(name, args)):
            return problem
        for i, child in enumerate(t.children):
            if isinstance(child, Tree):
                inside_loop = t.data == "member_dot_arg" and name in _MACROS and i == 2
                todo.append((child, nesting, loops + inside_loop))
    return None


def names_in(text: str) -> list[str]:
    """The free variable names an expression reads, in order of appearance."""
    ast, _ = _compiled(text)
    bound: set[str] = set()
    for t in ast.iter_subtrees():
        if t.data == "member_dot_arg" and len(t.children) >= 3 and str(t.children[1]) in _MACROS:
            args = t.children[2]
            first = args.children[0] if isinstance(args, Tree) and args.children else None
            while isinstance(first, Tree) and _is_pass_through(first):
                first = first.children[0]
            if isinstance(first, Tree) and first.data == "ident":  # the loop variable: xs.all(x, …)
                bound.add(str(first.children[0]))
    names: list[str] = []
    for t in ast.iter_subtrees_topdown():  # type: ignore[no-untyped-call]
        if t.data == "ident":
            name = str(t.children[0])
            if name not in bound and name not in names:
                names.append(name)
    return names


_ZERO: dict[FieldType, Any] = {
    FieldType.NUMBER: Decimal(0),
    FieldType.MONEY: Decimal(0),
    FieldType.BOOLEAN: False,
    FieldType.MULTI_ENUM: [],
    FieldType.LOCATION: {"lat": Decimal(0), "lon": Decimal(0), "address": ""},
    FieldType.DATE: dt.date(1970, 1, 1),
    FieldType.DATETIME: dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
}


def _cel(value: Any) -> Any:
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int | Decimal | float):
        return celtypes.DoubleType(float(value))
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, dt.datetime):
        return celtypes.TimestampType(value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"))
    if isinstance(value, dt.date):
        return celtypes.TimestampType(f"{value.isoformat()}T00:00:00Z")
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(k): _cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([_cel(v) for v in value])
    if value is None:
        return None
    raise ExpressionError("type", f"cannot use a {type(value).__name__} in an expression")


def _typed(value: Any, ftype: FieldType) -> Any:
    if value is None:
        return _ZERO.get(ftype, "")
    if ftype == FieldType.MONEY and isinstance(value, Mapping):
        return Decimal(str(value.get("amount", 0)))
    if ftype in (FieldType.NUMBER, FieldType.MONEY):
        return Decimal(str(value))
    if ftype == FieldType.DATETIME and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if ftype == FieldType.DATE and isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value


def activation(types: Mapping[str, FieldType], values: Mapping[str, Any]) -> dict[str, Any]:
    """CEL variables for declared names, missing values as their type's zero."""
    return {name: _cel(_typed(values.get(name), ftype)) for name, ftype in types.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, float):
        return Decimal(repr(float(value)))
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.ListType):
        return [_plain(v) for v in value]
    if isinstance(value, celtypes.MapType):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def evaluate(text: str, types: Mapping[str, FieldType], values: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` with the declared names bound to ``values``; plain Python result."""
    _, program = _compiled(text)
    try:
        result = program.evaluate(activation(types, values))
    except celpy.CELEvalError as exc:  # type: ignore[attr-defined]
        raise _eval_error(exc) from None
    if isinstance(result, celpy.CELEvalError):  # type: ignore[attr-defined]
        raise _eval_error(result)
    return _plain(result)


def condition(text: str, types: Mapping[str, FieldType], values: Mapping[str, Any]) -> bool:
    result = evaluate(text, types, values)
    if not isinstance(result, bool):
        raise ExpressionError("type", f"is a condition but gives a {_kind(result)}, not a boolean")
    return result


def _eval_error(exc: Exception) -> ExpressionError:
    text = str(exc.args[0] if exc.args else exc)
    if "undeclared reference" in text:
        return ExpressionError("unknown_name", text.split(" (in activation")[0])
    if "no matching overload" in text:
        return ExpressionError("type", "compares or combines values of different types")
    return ExpressionError("type", text[:200])


_SAMPLES: dict[FieldType, list[Any]] = {
    FieldType.NUMBER: [Decimal(0), Decimal(1000001)],
    FieldType.MONEY: [Decimal(0), Decimal(1000001)],
    FieldType.BOOLEAN: [False, True],
}


def check(text: str, types: Mapping[str, FieldType], want_bool: bool = True) -> ExpressionError | None:
    """Problems with an expression at save time: syntax, unknown names, type mismatches.

    Types are checked by evaluating against sample values of the declared types (twice:
    with zeros/false and with large/true values, so both sides of && and || run) — only once
    the expression's cost is known to be bounded (``cost_problem``).
    """
    if len(text) > MAX_LENGTH:
        return ExpressionError("cost", f"is {len(text)} characters long; at most {MAX_LENGTH}")
    try:
        if (problem := cost_problem(text)) is not None:
            return ExpressionError("cost", problem)
        names = names_in(text)
    except ExpressionError as exc:
        return exc
    unknown = [n for n in names if n not in types]
    if unknown:
        return ExpressionError("unknown_name", f"unknown name(s): {', '.join(unknown)}")
    for i in range(2):
        sample = {n: (_SAMPLES.get(t) or [None, None])[i] for n, t in types.items()}
        for n, t in types.items():
            if sample[n] is None:
                sample[n] = _ZERO.get(t, "sample")
        try:
            result = evaluate(text, types, sample)
        except ExpressionError as exc:
            return exc
        if want_bool and not isinstance(result, bool):
            return ExpressionError("type", f"is a condition but gives a {_kind(result)}, not a boolean")
    return None


def _kind(value: Any) -> str:
    return {Decimal: "number", str: "string", list: "list", dict: "map", int: "number"}.get(type(value), "value")
