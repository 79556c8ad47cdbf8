"""Form values against a template's fields: types, required, options, ranges, patterns, roles.

Money travels as ``{"amount": "123.45", "currency": "CNY"}`` with the amount a string (or an
integer); a float amount is refused, so no binary fraction ever becomes money.

Every value is bounded, so no single field carries megabytes into a workflow: text and file
values by ``MAX_CHARS`` (or the field's own ``max`` when smaller), numbers and amounts by
magnitude. A field's ``pattern`` is a template author's regular expression run on customer
input: it runs on re2 (linear time, no backreferences or lookaround); ``pattern_problem`` says
why a pattern cannot be used (template validation reports it when the template is saved).
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import re2

from models.template import FieldType, FormField, TemplateSpec

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
PHONE = re2.compile(r"\+?[0-9][0-9 \-]{5,19}", options=_RE2_OPTIONS)
EMAIL = re2.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+", options=_RE2_OPTIONS)
CURRENCY = re2.compile(r"[A-Za-z]{3}", options=_RE2_OPTIONS)
FULL_ACCESS = frozenset({"admin"})

# The longest value of each text-like type (a field's own smaller ``max`` still applies).
MAX_CHARS = {FieldType.TEXT: 2_000, FieldType.LONG_TEXT: 20_000, FieldType.FILE: 2_000}
MAX_EMAIL, MAX_ADDRESS = 254, 500
# Numbers and amounts: at most 40 characters, magnitude below 10^15 and no finer than 10^-15.
MAX_NUMBER_CHARS, MAX_MAGNITUDE, MIN_EXPONENT = 40, 15, -15
MAX_PATTERN = 1_000


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> Any:
    return re2.compile(pattern, options=_RE2_OPTIONS)


def pattern_problem(pattern: str) -> str | None:
    """Why a field's ``pattern`` cannot be used (too long, or not a valid re2 expression:
    backreferences and lookaround are not supported), or None."""
    if len(pattern) > MAX_PATTERN:
        return f"pattern is longer than {MAX_PATTERN} characters"
    try:
        _pattern(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"pattern {pattern[:100]!r} is not a valid re2 regular expression ({reason})"
    return None


def _bounded(number: Decimal) -> bool:
    return number.is_finite() and (number.is_zero() or MIN_EXPONENT <= number.adjusted() < MAX_MAGNITUDE)


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or isinstance(value, float):
        return None
    if isinstance(value, str) and len(value) > MAX_NUMBER_CHARS:
        return None
    try:
        return Decimal(str(value)) if isinstance(value, int | str | Decimal) else None
    except (InvalidOperation, ValueError):  # ValueError: an int with more digits than Python prints
        return None


def normalize(f: FormField, value: Any) -> Any:
    """The stored form of a valid value (call ``check_value`` first)."""
    if f.type == FieldType.NUMBER:
        return str(Decimal(str(value))) if not isinstance(value, float) else str(Decimal(repr(value)))
    if f.type == FieldType.MONEY:
        return {"amount": str(_decimal(value["amount"])), "currency": str(value["currency"]).upper()}
    return value


def _range(f: FormField, number: Decimal, what: str) -> str | None:
    if f.min is not None and number < f.min:
        return f"{what} must be at least {f.min}"
    if f.max is not None and number > f.max:
        return f"{what} must be at most {f.max}"
    return None


def check_value(f: FormField, value: Any) -> str | None:  # noqa: C901, PLR0911, PLR0912 - one branch per type
    """Why ``value`` is not valid for field ``f``, or None."""
    t = f.type
    if t in (FieldType.TEXT, FieldType.LONG_TEXT, FieldType.FILE):
        if not isinstance(value, str):
            return "must be a string"
        if len(value) > MAX_CHARS[t]:
            return f"length must be at most {MAX_CHARS[t]}"
        if too_long := _range(f, Decimal(len(value)), "length"):
            return too_long
        if f.pattern:
            if (problem := pattern_problem(f.pattern)) is not None:
                return problem
            if not _pattern(f.pattern).fullmatch(value):
                return f"does not match {f.pattern!r}"
        return None
    if t == FieldType.NUMBER:
        number = Decimal(repr(value)) if isinstance(value, float) else _decimal(value)
        if number is None or not number.is_finite():
            return "must be a number"
        if not _bounded(number):
            return f"must be below 10^{MAX_MAGNITUDE} in size, with at most {-MIN_EXPONENT} decimals"
        return _range(f, number, "value")
    if t == FieldType.MONEY:
        if not isinstance(value, Mapping) or set(value) != {"amount", "currency"}:
            return 'must be {"amount": "123.45", "currency": "CNY"}'
        if isinstance(value["amount"], float):
            return 'amount must be sent as a string (e.g. "1999.90"), not a JSON number with a fraction'
        amount = _decimal(value["amount"])
        if amount is None or not amount.is_finite():
            return "amount must be a decimal number"
        if not _bounded(amount):
            return f"amount must be below 10^{MAX_MAGNITUDE}, with at most {-MIN_EXPONENT} decimals"
        currency = value["currency"]
        if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
            return "currency must be an ISO 4217 code"
        if f.currency and currency.upper() != f.currency:
            return f"currency must be {f.currency}"
        return _range(f, amount, "amount")
    if t == FieldType.ENUM:
        return None if value in (f.options or []) else f"must be one of {f.options}"
    if t == FieldType.MULTI_ENUM:
        if not isinstance(value, list) or any(v not in (f.options or []) for v in value):
            return f"must be a list of {f.options}"
        return "has duplicates" if len(set(value)) != len(value) else None
    if t == FieldType.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if t == FieldType.DATE:
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be a date like 2026-11-24"
        return None
    if t == FieldType.DATETIME:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be an ISO 8601 date-time"
        return None if parsed.tzinfo else "must include a timezone offset"
    if t == FieldType.PHONE:
        return None if isinstance(value, str) and PHONE.fullmatch(value) else "must be a phone number"
    if t == FieldType.EMAIL:
        ok = isinstance(value, str) and len(value) <= MAX_EMAIL and EMAIL.fullmatch(value)
        return None if ok else "must be an email address"
    if t == FieldType.LOCATION:
        if not isinstance(value, Mapping) or not {"lat", "lon"} <= set(value) or set(value) - {"lat", "lon", "address"}:
            return 'must be {"lat": 31.23, "lon": 121.47, "address": "…"}'
        address = value.get("address")
        if address is not None and (not isinstance(address, str) or len(address) > MAX_ADDRESS):
            return f"address must be a string of at most {MAX_ADDRESS} characters"
        lat, lon = value["lat"], value["lon"]
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in (lat, lon)):
            return "lat and lon must be numbers"
        return None if -90 <= lat <= 90 and -180 <= lon <= 180 else "lat/lon out of range"
    return None


def _editable(f: FormField, roles: Iterable[str] | None) -> bool:
    if roles is None or not f.editable_by:
        return True
    return bool(set(roles) & (set(f.editable_by) | FULL_ACCESS))


def validate_values(
    spec: TemplateSpec, values: Mapping[str, Any], roles: Iterable[str] | None = None, intake: bool = False
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Normalised values and problems ``(field, message, type)``; ``intake`` also checks required."""
    roles = list(roles) if roles is not None else None
    out: dict[str, Any] = {}
    problems: list[tuple[str, str, str]] = []
    for name, value in values.items():
        f = spec.field(name)
        if f is None:
            problems.append((name, f"unknown field for {spec.key}", "unknown_field"))
            continue
        if not _editable(f, roles):
            problems.append((name, f"only {', '.join(f.editable_by)} may set {name}", "not_editable"))
            continue
        if value is None:
            continue
        if (msg := check_value(f, value)) is not None:
            problems.append((name, msg, "invalid_value"))
            continue
        out[name] = normalize(f, value)
    if intake:
        for f in spec.fields:
            if f.required and f.default is None and f.name not in out and not any(p[0] == f.name for p in problems):
                problems.append((f.name, "required", "missing"))
    return out, problems


def visible_values(spec: TemplateSpec, values: Mapping[str, Any], roles: Iterable[str]) -> dict[str, Any]:
    """The values a caller with ``roles`` may see (e.g. cost fields only for finance)."""
    roles = set(roles)
    shown = {}
    for name, value in values.items():
        f = spec.field(name)
        if f is None or not f.visible_to or roles & (set(f.visible_to) | FULL_ACCESS):
            shown[name] = value
    return shown
